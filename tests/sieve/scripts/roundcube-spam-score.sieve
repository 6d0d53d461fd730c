require ["relational","comparator-i;ascii-numeric","fileinto"];
# rule:[Score]
if allof (header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5")
{
	fileinto "Junk";
	stop;
}
