require ["ihave", "fileinto"];
if header :contains "subject" "hello" { error "hello is not allowed"; }
fileinto "ok";
