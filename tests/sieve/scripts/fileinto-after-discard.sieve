require "fileinto";
discard;
fileinto "Rescued";
