require ["include", "fileinto"];
include "early-return";
fileinto "main-continues";
