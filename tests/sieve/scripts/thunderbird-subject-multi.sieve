require ["fileinto"];

if header :contains "Subject" ["Invoice", "Order", "Receipt"]
{
  fileinto "INBOX.Purchases";
  stop;
}
