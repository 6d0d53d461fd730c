require ["ihave", "fileinto"];
if ihave "fileinto" { fileinto "has-fileinto"; }
if ihave ["variables", "imap4flags"] { fileinto "has-both"; }
