require ["encoded-character", "fileinto"];
if header :contains "subject" "${hex:48 65 6c 6c 6f}" { fileinto "${hex:48}ello"; }
