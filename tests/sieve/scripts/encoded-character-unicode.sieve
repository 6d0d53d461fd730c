require ["encoded-character", "fileinto"];
if header :contains "subject" "Gr${unicode:fc}${unicode:DF}e" { fileinto "Gr${unicode:00fc}${unicode:df}e"; }
if header :contains "subject" "${unicode:1F389}" { fileinto "party-${unicode:1f389}"; }
