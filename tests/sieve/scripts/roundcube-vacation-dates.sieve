require ["date","relational","vacation"];
# rule:[Holiday]
if allof (currentdate :value "ge" "date" "2024-06-01", currentdate :value "le" "date" "2024-06-30")
{
	vacation :days 1 :subject "Holiday" :addresses ["me@example.com","me+shop@example.com"] "I am on holiday.";
}
