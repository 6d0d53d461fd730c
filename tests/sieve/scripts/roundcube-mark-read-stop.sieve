require ["imap4flags","fileinto"];
# rule:[Newsletters]
if anyof (header :is "precedence" ["bulk","list"])
{
	setflag "\\Seen";
	fileinto "Newsletters";
	stop;
}
# rule:[Keep flagged]
if true
{
	addflag "\\Flagged";
}
