require "fileinto";
# i;ascii-casemap folds ASCII only: "GRÜSSE" does not equal "grüsse".
if header :contains :comparator "i;ascii-casemap" "subject" "GRÜSSE" { fileinto "folded"; }
if header :contains :comparator "i;ascii-casemap" "subject" "grüße" { fileinto "same-case"; }
