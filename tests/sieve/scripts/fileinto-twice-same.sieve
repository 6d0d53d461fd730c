require "fileinto";
fileinto "Same";
fileinto "Same";
