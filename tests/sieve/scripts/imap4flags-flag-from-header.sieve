require ["imap4flags", "variables"];
if header :matches "x-category" "*" { addflag "cat-${1}"; }
if header :matches "x-label" "*" { addflag "${1}"; }
