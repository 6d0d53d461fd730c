require "editheader";
addheader :last "X-Sieve-Trace" "added at the end";
addheader "X-Sieve-First" "added at the top";
