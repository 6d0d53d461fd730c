require ["include", "variables"];
global "folder";
if header :contains "subject" "invoice" { set "folder" "Invoices"; }
