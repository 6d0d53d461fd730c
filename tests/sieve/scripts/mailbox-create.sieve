require ["mailbox", "fileinto"];
fileinto :create "Created/By/Sieve";
