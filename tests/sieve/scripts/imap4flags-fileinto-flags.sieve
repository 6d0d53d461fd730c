require ["imap4flags", "fileinto"];
if header :contains "subject" ["invoice", "order"] {
    fileinto :flags ["\\Seen", "$Invoice"] "Receipts";
} else {
    fileinto :flags "\\Answered" "Other";
}
