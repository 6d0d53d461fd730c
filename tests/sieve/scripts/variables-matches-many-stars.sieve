require ["variables", "fileinto"];
if header :matches "subject" "*e*e*" { fileinto "m/${1}|${2}|${3}"; }
