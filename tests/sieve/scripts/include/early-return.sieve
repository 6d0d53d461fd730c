require ["include", "fileinto"];
if header :contains "subject" "hello" { return; }
fileinto "included-ran-to-end";
