require ["editheader", "variables", "relational", "comparator-i;ascii-numeric"];
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" {
    if header :matches "subject" "*" {
        deleteheader "subject";
        addheader "Subject" "[SPAM] ${1}";
    }
}
