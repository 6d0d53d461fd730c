require ["fileinto", "imap4flags"];

if address :is "from" ["alice@example.org", "bob@example.net"]
{
  fileinto "INBOX.Friends";
}
elsif address :contains "to" "team@"
{
  addflag "$label1";
  fileinto "INBOX.Work";
}
