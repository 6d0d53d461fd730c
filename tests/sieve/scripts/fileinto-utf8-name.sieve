require "fileinto";
fileinto "Entwürfe/Überblick";
