require ["mime", "fileinto", "imap4flags"];
if header :mime :anychild :contenttype "Content-Type" "text/html" { fileinto "anychild-html"; }
if header :mime :type "Content-Type" "multipart" { addflag "top-multipart"; }
if header :mime :contenttype "Content-Type" "text/plain" { addflag "top-plain"; }
if exists :mime :anychild "Content-Disposition" { addflag "has-disposition"; }
if exists :mime "Content-Type" { addflag "top-has-ct"; }
if header :mime :anychild :param "boundary" :contains "Content-Type" "N" { addflag "inner-boundary-n"; }
if header :mime :anychild :subtype "Content-Type" "mixed" { addflag "anychild-sees-mixed"; }
