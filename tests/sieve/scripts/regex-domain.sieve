require ["regex", "fileinto"];
if address :regex :domain "from" "example\\.(org|net)$" { fileinto "example"; }
if address :regex :localpart "from" "^no-?reply" { fileinto "noreply"; }
