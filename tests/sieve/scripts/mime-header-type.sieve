require ["mime", "fileinto"];
if header :mime :type "content-type" "multipart" { fileinto "multipart"; }
if header :mime :subtype "content-type" "html" { fileinto "html-top"; }
if header :mime :contenttype "content-type" "text/plain" { fileinto "text-plain"; }
