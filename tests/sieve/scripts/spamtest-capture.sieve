require ["spamtest", "variables", "fileinto"];
if spamtest :matches "*" { fileinto "spamtest-${1}"; }
