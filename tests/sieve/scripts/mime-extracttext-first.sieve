require ["foreverypart", "mime", "extracttext", "variables", "fileinto", "imap4flags"];
foreverypart {
  if header :mime :contenttype "Content-Type" "text/plain" {
    extracttext :first 200 "t";
    if string :contains "${t}" ["meeting", "invoice", "urgent"] { fileinto "keyword-in-text"; }
    extracttext :lower "all";
    if string :contains "${all}" "caf" { addflag "cafe"; }
    break;
  }
}
