require ["fileinto"];
# rule:[Disabled rule]
if false # allof (header :contains "subject" "hello")
{
	fileinto "Hello";
}
# rule:[Enabled rule]
if allof (header :contains "subject" "hello")
{
	fileinto "Greetings";
}
