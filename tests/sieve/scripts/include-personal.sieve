require ["include", "fileinto"];
include :personal "spam-rules";
fileinto "after-include";
