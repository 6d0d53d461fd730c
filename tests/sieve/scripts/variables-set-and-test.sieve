require ["variables", "fileinto"];
set "a" "one";
set "b" "${a}-two";
set "c" "${b}-${a}-${undefined}-end";
if string :is "${c}" "one-two-one--end" { fileinto "ok"; }
