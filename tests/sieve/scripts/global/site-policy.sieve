require ["fileinto"];
if exists "x-spam-flag" { fileinto "Junk"; stop; }
