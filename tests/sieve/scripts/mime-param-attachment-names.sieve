# The common "block executables" rule: attachment names from either header.
require ["foreverypart", "mime", "fileinto", "imap4flags"];
foreverypart {
  if anyof (header :mime :param "filename" :matches "Content-Disposition" ["*.exe", "*.scr", "*.zip"],
            header :mime :param "name" :matches "Content-Type" ["*.exe", "*.scr", "*.zip"]) {
    fileinto "Quarantine";
    break;
  }
  if header :mime :param "charset" :is "Content-Type" "iso-8859-1" { addflag "latin1"; }
  if header :mime :param "method" :is "Content-Type" "REQUEST" { fileinto "Invitations"; }
}
