require ["editheader", "fileinto"];
addheader "X-Seen-By-Sieve" "1";
if exists "x-seen-by-sieve" { fileinto "sees-added"; }
deleteheader "subject";
if not exists "subject" { fileinto "subject-gone"; }
