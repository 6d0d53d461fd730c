require ["fileinto"];

# Filter: Mailing lists
if anyof (header :contains "List-Id" "dev.lists.example.com",
          header :contains "List-Id" "users.lists.example.com")
{
  fileinto "INBOX.Lists";
  stop;
}

# Filter: Everything else stays
keep;
