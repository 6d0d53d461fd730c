require ["regex", "fileinto"];
if header :regex :comparator "i;ascii-casemap" "subject" "^re: " { fileinto "reply"; }
if header :regex :comparator "i;octet" "subject" "^Re: " { fileinto "reply-octet"; }
