require "imap4flags";
setflag "\\Deleted";
keep :flags "\\Flagged";
