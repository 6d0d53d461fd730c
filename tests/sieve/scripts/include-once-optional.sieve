require ["include", "fileinto"];
include :once "spam-rules";
include :once "spam-rules";
include :optional "does-not-exist";
fileinto "done";
