require ["imap4flags", "relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" {
    addflag "$Junk";
    fileinto "Junk";
    stop;
}
addflag "$NotJunk";
