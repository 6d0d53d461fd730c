require ["variables", "fileinto"];
set "text" text:
line one
..dot-stuffed line
.
;
if string :matches "${text}" "line one*.dot-stuffed line*" { fileinto "multiline-ok"; }
if string :contains "${text}" "..dot" { fileinto "dots-kept"; }
set :length "n" "${text}";
fileinto "len-${n}";
