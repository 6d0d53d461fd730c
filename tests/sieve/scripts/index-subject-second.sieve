require ["index", "fileinto"];
if header :index 2 :is "subject" "Second subject" { fileinto "second"; }
if header :index 1 :is "subject" "Second subject" { fileinto "first-is-second"; }
