require ["fileinto", "body"];

if size :over 100K
{
  fileinto "INBOX.Large";
}
if body :contains "password"
{
  fileinto "INBOX.Security";
}
