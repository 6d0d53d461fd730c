require ["imap4flags", "variables", "fileinto"];
set "myflags" "";
addflag "myflags" "a";
addflag "myflags" ["b", "c a"];
removeflag "myflags" "b";
set "c" "no";
if hasflag "myflags" "c" { set "c" "yes"; }
set "b" "no";
if hasflag "b" { set "b" "yes"; }
fileinto :flags "${myflags}" "Flagged-c=${c}-internal-b=${b}";
