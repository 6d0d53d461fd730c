require "fileinto";
if header :contains "subject" "invoice" {
    fileinto "Finance";
} elsif header :contains "subject" "urgent" {
    fileinto "Urgent";
} elsif address :domain :is "from" "lists.example.com" {
    fileinto "Lists";
} else {
    fileinto "Other";
}
