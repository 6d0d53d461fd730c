require "vacation";
vacation :addresses ["alias@example.com", "someone-else@example.org", "other@example.com"] "Away.";
