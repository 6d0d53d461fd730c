require ["fileinto"];
# rule:[Spam]
if allof (header :contains "x-spam-flag" "YES")
{
	fileinto "Junk";
	stop;
}
# rule:[Developers list]
if anyof (header :contains "list-id" "dev.lists.example.com", header :contains "subject" "[dev]")
{
	fileinto "Lists/dev";
	stop;
}
