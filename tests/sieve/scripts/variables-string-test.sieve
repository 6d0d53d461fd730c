require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
set "n" "42";
if string :value "gt" :comparator "i;ascii-numeric" "${n}" "9" { fileinto "numeric-gt"; }
if string :value "gt" "${n}" "9" { fileinto "string-gt"; }
if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { fileinto "count-nonempty"; }
