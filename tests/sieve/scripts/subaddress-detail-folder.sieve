require ["fileinto", "subaddress", "envelope", "variables"];
if envelope :detail :matches "to" "*" {
    if string :is "${1}" "" { fileinto "tag-empty"; stop; }
    set :lower "tag" "${1}";
    fileinto "tag/${tag}";
}
