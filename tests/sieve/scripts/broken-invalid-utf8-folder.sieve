require "fileinto";
fileinto "ÿþ";
