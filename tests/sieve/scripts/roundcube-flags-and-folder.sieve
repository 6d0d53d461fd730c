require ["imap4flags","fileinto"];
# rule:[Invoices]
if anyof (header :contains "subject" "invoice", address :domain :is "from" "shop.example")
{
	addflag "\\Flagged";
	fileinto "Invoices";
}
