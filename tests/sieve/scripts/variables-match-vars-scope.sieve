require ["variables", "fileinto"];
if header :matches "from" "*@*" { set "user" "${1}"; set "dom" "${2}"; }
if header :matches "subject" "*" { }
fileinto "u-${user}-d-${dom}-0-${0}";
