require ["body", "fileinto"];
if body :text :contains "banana" { fileinto "banana"; }
if body :text :contains "swordfish" { fileinto "decoded-base64"; }
if body :text :contains "Café" { fileinto "decoded-qp"; }
