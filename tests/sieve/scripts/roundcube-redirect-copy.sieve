require ["copy"];
# rule:[Forward boss]
if allof (address :is "from" "boss@corp.example")
{
	redirect :copy "assistant@example.com";
}
