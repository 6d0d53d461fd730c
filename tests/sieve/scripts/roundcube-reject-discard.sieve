require ["reject"];
# rule:[Lottery]
if anyof (header :contains "subject" "lottery", header :contains "from" "lottery.example")
{
	discard;
	stop;
}
# rule:[Malware]
if allof (address :domain :is "from" "malware.example")
{
	reject "Rejected.";
	stop;
}
