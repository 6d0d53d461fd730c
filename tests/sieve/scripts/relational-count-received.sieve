require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :count "ge" :comparator "i;ascii-numeric" "received" "5" { fileinto "many-hops"; }
if header :count "eq" :comparator "i;ascii-numeric" "received" "0" { fileinto "no-hops"; }
