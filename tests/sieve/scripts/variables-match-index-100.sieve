require ["variables", "fileinto"];
# Pigeonhole reports "match value index 100 out of range (max: 32)" as an error but still
# compiles the script (exit status 0); ${100} then expands to the empty string.
if header :matches "subject" "*" { set "a" "[${100}]"; }
fileinto "m${a}";
