require "fileinto";
if size :under 2K { fileinto "My Folder"; }
else { fileinto "a.b.c"; }
