require "fileinto";
if header :matches "subject" "S?le!" { fileinto "five"; }
if header :matches "subject" "??" { fileinto "two"; }
if header :matches "subject" "?*" { fileinto "non-empty"; }
if header :matches "subject" "*" { fileinto "any"; }
