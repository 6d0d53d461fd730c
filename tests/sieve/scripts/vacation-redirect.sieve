require "vacation";
redirect "deputy@example.com";
vacation :subject "Forwarded to my deputy" "Your message was forwarded to my deputy.";
