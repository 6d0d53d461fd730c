require ["envelope", "fileinto"];
if envelope :is "to" "me@example.com" { fileinto "to-me"; }
if envelope :is "from" "alice@example.org" { fileinto "from-alice"; }
if envelope :domain :is "from" "lists.example.com" { fileinto "from-list"; }
