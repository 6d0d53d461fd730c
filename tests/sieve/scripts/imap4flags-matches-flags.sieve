require ["imap4flags", "variables", "fileinto"];
addflag ["$Label1", "Work"];
if hasflag :matches "$label*" { fileinto "label-star"; }
if hasflag :matches "w?rk" { fileinto "w-rk"; }
