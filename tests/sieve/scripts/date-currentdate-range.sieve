require ["date", "relational", "fileinto"];
if allof (currentdate :value "ge" "date" "2024-06-01",
          currentdate :value "le" "date" "2024-06-30") {
    fileinto "june";
}
if currentdate :value "lt" "year" "2024" { fileinto "past"; }
