require ["enotify"];
if header :contains "subject" "urgent" {
    notify :importance "1" :message "Urgent mail arrived" "mailto:pager@example.com";
}
