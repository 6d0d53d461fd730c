require ["mime", "foreverypart", "fileinto", "imap4flags"];
if header :mime :contains "Subject" "Rechnung" { addflag "top-subject"; }
foreverypart {
  if header :mime :contains "Content-Description" "" { addflag "has-description"; }
  if header :mime :contains "Content-Type" "name" { addflag "ct-with-name"; }
}
