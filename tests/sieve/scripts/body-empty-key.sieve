require ["body", "fileinto"];
if body :contains "" { fileinto "any-body"; }
if body :content "image" :contains "" { fileinto "has-image"; }
if body :content "application/pdf" :contains "" { fileinto "has-pdf"; }
