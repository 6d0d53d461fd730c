require ["fileinto"];
# rule:[Big personal]
if allof (not header :contains "precedence" "bulk", not exists "list-id", size :over 50K)
{
	fileinto "Big";
}
