require "imap4flags";
addflag ["\\Flagged", "$Work", "todo"];
addflag "\\Seen";
removeflag ["todo", "\\seen"];
