require ["variables", "fileinto"];
set "Folder" "Mixed";
fileinto "${FOLDER}/${folder}";
