require ["vacation", "fileinto"];
fileinto "WhileAway";
vacation :subject "Away" "Away.";
