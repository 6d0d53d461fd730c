require ["index", "fileinto"];
if address :index 2 :is "to" "b@example.com" { fileinto "second-to-b"; }
if address :index 1 :last :domain :is "to" "example.com" { fileinto "last-to-example"; }
