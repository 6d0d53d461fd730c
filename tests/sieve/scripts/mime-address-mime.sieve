require ["mime", "fileinto"];
if address :mime :anychild :domain :is "from" "example.net" { fileinto "nested-from-example-net"; }
if exists :mime :anychild "content-id" { fileinto "has-content-id"; }
