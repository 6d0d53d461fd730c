require ["variables","fileinto"];
# rule:[Variable]
if allof (header :matches "list-id" "*<*.lists.example.com>*")
{
	set "list" "${2}";
	fileinto "Lists/${list}";
}
