require "fileinto";
if allof (size :over 1K, size :under 20K) { fileinto "medium"; }
elsif size :over 20K { fileinto "large"; }
else { fileinto "small"; }
