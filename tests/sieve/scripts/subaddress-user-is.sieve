require ["fileinto", "subaddress", "envelope"];
if envelope :user :is "to" "me" { fileinto "user-me"; }
if address :user :is "to" "me" { fileinto "to-user-me"; }
if address :user :is "from" "alice" { fileinto "from-alice"; }
