require "fileinto";
if header :contains "subject" "Grüße" { fileinto "umlaut"; }
if header :contains "subject" "Café" { fileinto "cafe"; }
if header :contains "from" "Jörg" { fileinto "joerg"; }
if header :contains "subject" "Привет" { fileinto "russian"; }
