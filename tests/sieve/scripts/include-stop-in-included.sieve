require ["include", "fileinto"];
include "stopper";
fileinto "not-after-stop";
