require ["foreverypart", "mime", "variables", "fileinto"];
set "types" "";
foreverypart {
    if header :mime :contenttype :matches "content-type" "*" {
        set "types" "${types}+${1}";
    }
}
fileinto "parts${types}";
