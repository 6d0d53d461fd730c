require "fileinto";
stop;
fileinto "Never";
