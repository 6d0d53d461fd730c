require "fileinto";
if header :matches "subject" "*\\**" { fileinto "literal-star"; }
if header :matches "subject" "*\\?*" { fileinto "literal-question"; }
if header :matches "subject" "*C:\\\\temp*" { fileinto "literal-backslash"; }
if header :matches "subject" "*\\*star\\**" { fileinto "star-word"; }
