require ["fileinto", "copy"];
fileinto "x" :copy;
