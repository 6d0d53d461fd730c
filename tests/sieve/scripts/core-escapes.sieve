require "fileinto";
if header :contains "subject" "\"quotes\"" { fileinto "has-quotes"; }
if header :contains "subject" "C:\\temp" { fileinto "has-backslash"; }
if header :contains "subject" "\H\e\l\l\o" { fileinto "unknown-escapes"; }
