require ["foreverypart", "mime", "variables", "extracttext", "fileinto"];
foreverypart {
    if header :mime :contenttype "content-type" "text/plain" {
        extracttext :first 12 "start";
        fileinto "starts-${start}";
        break;
    }
}
