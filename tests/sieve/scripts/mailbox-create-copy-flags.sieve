require ["mailbox", "fileinto", "copy", "imap4flags"];
addflag "\\Seen";
fileinto :create :copy :flags "\\Seen" "Archive";
