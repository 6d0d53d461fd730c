require ["imap4flags", "fileinto"];
addflag "Important";
if hasflag "important" { fileinto "has-important"; }
if hasflag :is "Other" { fileinto "has-other"; }
if not hasflag :contains "port" { fileinto "no-substring"; }
