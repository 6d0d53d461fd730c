require ["enotify", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
notify :message "New: ${s}" "mailto:watch@example.com?cc=second@example.com";
