require "editheader";
deleteheader :contains "x-category" "urg";
deleteheader :matches "subject" "*digest*";
