redirect "bob@example.com";
redirect "carol@example.net";
keep;
