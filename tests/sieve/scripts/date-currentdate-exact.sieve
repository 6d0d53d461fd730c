require ["date", "fileinto"];
if currentdate :zone "+0000" "date" "2024-06-15" { fileinto "today"; }
if currentdate :zone "+0000" "hour" "12" { fileinto "noon"; }
