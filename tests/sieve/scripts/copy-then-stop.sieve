require ["fileinto", "copy"];
if header :contains "subject" "invoice" {
    fileinto :copy "Invoices";
    stop;
}
fileinto "Other";
