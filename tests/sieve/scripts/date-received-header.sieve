require ["date", "variables", "fileinto", "index"];
if date :index 1 :zone "+0000" :matches "received" "iso8601" "*" {
    fileinto "received-${1}";
}
