require ["envelope", "fileinto"];
if not envelope :all :is "to" "me@example.com" {
    if address :all :is "to" "me@example.com" { fileinto "header-only"; stop; }
    fileinto "neither";
}
