require "editheader";
addheader "Received" "from sieve";
deleteheader "Received";
addheader "Auto-Submitted" "no";
addheader "X-Allowed" "yes";
