require "reject";
if header :contains "subject" "lottery" { reject "No lotteries, thank you."; }
