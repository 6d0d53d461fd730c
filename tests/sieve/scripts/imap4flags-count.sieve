require ["imap4flags", "relational", "comparator-i;ascii-numeric", "fileinto"];
addflag ["one", "two", "three"];
if hasflag :count "ge" :comparator "i;ascii-numeric" "3" { fileinto "three-or-more"; }
if hasflag :count "eq" :comparator "i;ascii-numeric" "2" { fileinto "exactly-two"; }
