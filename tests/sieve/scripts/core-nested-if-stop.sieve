require "fileinto";
if address :domain :is "from" ["example.org", "example.net"] {
    if header :contains "subject" "meeting" {
        fileinto "Meetings";
        stop;
    }
    if exists "cc" {
        fileinto "Known/CC";
    }
    fileinto "Known";
}
fileinto "After";
