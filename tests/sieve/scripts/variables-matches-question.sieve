require ["variables", "fileinto"];
if header :matches "from" "?*@?*" { fileinto "q/${1}/${2}/${3}/${4}"; }
