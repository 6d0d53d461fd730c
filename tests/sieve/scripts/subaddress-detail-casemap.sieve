require ["fileinto", "subaddress", "envelope"];
if envelope :detail :is "to" "lists" { fileinto "lists-casemap"; }
if envelope :detail :is :comparator "i;octet" "to" "lists" { fileinto "lists-octet"; }
