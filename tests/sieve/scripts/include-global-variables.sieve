require ["include", "variables", "fileinto"];
global "folder";
set "folder" "Start";
include "set-folder";
fileinto "${folder}";
