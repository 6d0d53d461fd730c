require "fileinto";
if exists "list-id" { fileinto "Lists"; stop; }
if header :contains "precedence" ["bulk", "junk"] { fileinto "Bulk"; stop; }
if exists "auto-submitted" { fileinto "Auto"; stop; }
fileinto "Personal";
