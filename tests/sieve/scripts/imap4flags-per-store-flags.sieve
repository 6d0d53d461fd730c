require ["imap4flags", "fileinto", "copy"];
# Each store gets the flags of its own moment: Archive \Seen, the implicit keep \Flagged.
# mailpipe's contract has one flag set per message (see KNOWN-DIFFERENCES.md).
addflag "\\Seen";
fileinto :copy "Archive";
removeflag "\\Seen";
addflag "\\Flagged";
