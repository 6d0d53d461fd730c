require "fileinto";
if header :contains "subject" "[dev]" { fileinto "Lists/dev"; stop; }
fileinto "Archive/2024/January";
