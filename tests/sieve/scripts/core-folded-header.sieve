require "fileinto";
if header :is "subject" "This subject is folded over	three lines" { fileinto "unfolded-exact"; }
if header :contains "subject" "is folded over" { fileinto "unfolded"; }
if header :matches "subject" "*folded over*three*" { fileinto "unfolded-matches"; }
