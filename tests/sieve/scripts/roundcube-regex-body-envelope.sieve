require ["regex","body","envelope","fileinto"];
# rule:[Orders]
if allof (header :regex "subject" "order #?[0-9]+", body :text :contains "shipped", envelope :all :is "to" "me+shop@example.com")
{
	fileinto "Orders";
}
# rule:[Tracking]
if anyof (body :text :contains "Tracking")
{
	fileinto "Tracking";
}
