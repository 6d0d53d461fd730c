require ["foreverypart", "mime", "fileinto"];
foreverypart :name "outer" {
    if header :mime :type "content-type" "image" {
        fileinto "found-image";
        break :name "outer";
    }
}
