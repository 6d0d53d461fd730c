require ["date", "variables", "fileinto"];
if currentdate :zone "+0000" :matches "iso8601" "*" { set "now" "${1}"; }
if currentdate :zone "+0200" :matches "time" "*" { set "t" "${1}"; }
if currentdate :matches "weekday" "*" { set "wd" "${1}"; }
fileinto "now/${now}/${t}/${wd}";
