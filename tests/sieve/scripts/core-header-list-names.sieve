require "fileinto";
if header :contains ["subject", "from", "x-mailer"] ["example.net", "MassMailer"] {
    fileinto "any-field";
}
