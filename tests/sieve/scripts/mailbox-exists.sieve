require ["mailbox", "fileinto"];
if mailboxexists "INBOX" { fileinto "inbox-exists"; }
if mailboxexists "NoSuchFolder-xyz" { fileinto "weird"; }
