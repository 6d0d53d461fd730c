require ["foreverypart", "mime", "variables", "editheader"];
set "seen" "";
foreverypart :name "outer" {
  if header :mime :contenttype :matches "Content-Type" "*" { set "seen" "${seen}[${1}]"; }
  foreverypart :name "inner" {
    if header :mime :subtype "Content-Type" "html" { break :name "outer"; }
    if header :mime :type "Content-Type" "image" { break; }
  }
}
addheader "X-Seen" "${seen}";
