require "imap4flags";
addflag "a  b c";
addflag ["d e", "f"];
removeflag "c d";
