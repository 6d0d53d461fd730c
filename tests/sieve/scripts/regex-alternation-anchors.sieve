require ["regex", "fileinto"];
if header :regex "subject" "^(invoice|order|receipt)" { fileinto "anchored"; }
if header :regex "subject" "(invoice|order|receipt)" { fileinto "anywhere"; }
if header :regex "subject" "[[:digit:]]{4,}" { fileinto "long-number"; }
