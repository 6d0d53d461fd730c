require ["encoded-character"];
redirect "${hex:62 6f 62}@example.com";
