require ["date", "fileinto"];
if date :is :originalzone "date" "weekday" ["0", "6"] { fileinto "weekend"; }
