require "fileinto";
fileinto "Copy";
keep;
