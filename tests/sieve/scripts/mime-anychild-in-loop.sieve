require ["foreverypart", "mime", "fileinto", "imap4flags"];
foreverypart {
  if header :mime :type "Content-Type" "multipart" {
    if header :mime :anychild :subtype "Content-Type" "html" { addflag "multipart-with-html-child"; }
    if header :mime :subtype "Content-Type" "alternative" { addflag "alternative"; }
  }
}
