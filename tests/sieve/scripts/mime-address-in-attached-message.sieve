require ["foreverypart", "mime", "fileinto", "imap4flags"];
foreverypart {
  if address :mime :domain "From" "example.net" { fileinto "attached-from-example-net"; }
  if address :mime :all :contains ["From", "To"] "@" { addflag "part-with-address"; }
  if exists :mime ["From", "Subject"] { addflag "part-is-a-message"; }
}
