require ["date", "relational", "fileinto"];
if date :value "lt" "date" "date" "2024-02-01" { fileinto "old"; }
if date :value "ge" "date" "date" "2024-06-01" { fileinto "recent"; }
if not exists "date" { fileinto "undated"; }
