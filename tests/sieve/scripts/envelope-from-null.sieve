require ["envelope", "fileinto"];
if envelope :is "from" "" { fileinto "null-sender"; }
if envelope :matches "from" "?*" { fileinto "has-sender"; }
