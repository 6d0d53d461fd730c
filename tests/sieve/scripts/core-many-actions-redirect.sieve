require ["fileinto", "imap4flags"];
addflag "\\Flagged";
fileinto "One";
fileinto "Two";
redirect "three@example.com";
keep;
