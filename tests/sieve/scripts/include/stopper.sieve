require "fileinto";
if exists "list-id" { fileinto "stopped-list"; stop; }
