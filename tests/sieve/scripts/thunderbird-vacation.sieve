require ["vacation"];

vacation
  :days 5
  :subject "Automatic reply"
  :addresses ["me@example.com"]
"I'm out of the office.
I'll answer when I'm back.";
