require "fileinto";
# Every value of a repeated field is tested.
if header :is "subject" "Second subject" { fileinto "second-subject"; }
if header :is "x-category" "urgent" { fileinto "cat-urgent"; }
if header :contains "received" "hop7" { fileinto "hop7"; }
