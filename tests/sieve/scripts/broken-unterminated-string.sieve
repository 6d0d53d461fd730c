require "fileinto";
fileinto "unterminated;
