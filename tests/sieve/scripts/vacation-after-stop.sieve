require "vacation";
if header :contains "subject" "hello" { stop; }
vacation :subject "Away" "Away.";
