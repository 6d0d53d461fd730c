require ["body", "fileinto", "regex"];
if body :regex "[0-9]{5}" { fileinto "five-digits"; }
if body :matches "*unsubscribe*" { fileinto "unsubscribe"; }
