require ["regex", "variables", "fileinto"];
if header :regex "date" "([0-9]+) ([A-Za-z]+) ([0-9]+)" {
    fileinto "date-${3}-${2}-${1}";
}
