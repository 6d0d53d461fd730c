require "fileinto";
if header :contains "subject" ["invoice", "URGENT", "sale", "lottery"] {
    fileinto "keywords";
}
