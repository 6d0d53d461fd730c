require ["foreverypart", "mime", "fileinto", "imap4flags"];
foreverypart {
  if header :mime :contenttype "Content-Type" "application/pdf" { fileinto "pdf"; }
  if header :mime :subtype "Content-Type" "html" { fileinto "has-html"; }
  if header :mime :type :is "Content-Type" "multipart" { addflag "multi"; }
}
