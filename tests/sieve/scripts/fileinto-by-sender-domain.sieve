require ["fileinto", "variables"];
if address :domain :matches "from" "*" {
    fileinto "by-domain/${1}";
}
