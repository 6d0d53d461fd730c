# Roundcube-style: file mail with an image part; break after the first.
require ["foreverypart", "mime", "fileinto"];
foreverypart {
  if header :mime :type "Content-Type" "image" {
    fileinto "images";
    break;
  }
}
