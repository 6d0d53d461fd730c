require ["editheader", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
addheader "X-Original-Subject-Length" "${s}";
set :length "n" "${s}";
addheader "X-Subject-Length" "${n}";
