require ["environment", "variables", "fileinto"];
if environment :matches "name" "*" { fileinto "env-name-${1}"; }
