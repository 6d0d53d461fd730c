require ["duplicate", "fileinto"];
if duplicate { fileinto "Duplicates"; stop; }
fileinto "First";
