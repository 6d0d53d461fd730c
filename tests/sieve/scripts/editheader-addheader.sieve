require "editheader";
addheader "X-Sieve-Filtered" "yes";
