require ["regex", "variables", "fileinto"];
if header :regex "x-spam-status" "^(Yes|No), score=(-?[0-9]+(\\.[0-9]+)?)" {
    fileinto "spam-${1}-${2}";
}
