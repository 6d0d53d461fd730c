require "fileinto";
# Without the extension the sequence is literal text.
fileinto "x${hex:41}y";
