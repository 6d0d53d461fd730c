require ["body", "fileinto"];
if body :content "text/html" :contains "meeting" { fileinto "html-meeting"; }
if body :content "text/plain" :contains "meeting" { fileinto "plain-meeting"; }
if body :content "text" :contains "banana" { fileinto "text-banana"; }
if body :content "message/rfc822" :contains "pineapple" { fileinto "forwarded"; }
