require ["variables", "fileinto"];
set "x" text: # a comment is allowed after text:
first
second
.
;
if string :matches "${x}" "first*second*" { fileinto "ok"; }
