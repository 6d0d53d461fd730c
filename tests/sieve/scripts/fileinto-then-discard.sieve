require "fileinto";
fileinto "Saved";
discard;
