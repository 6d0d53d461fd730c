require "fileinto";
if header :contains "subject" "hello" { fileinto "inbox"; }
if header :contains "subject" "invoice" { fileinto "INBOX"; }
if header :contains "subject" "urgent" { fileinto "Inbox"; keep; }
if header :contains "subject" "digest" { fileinto "INBOX/Sub"; }
