redirect "bob@example.com";
redirect "bob@example.com";
redirect "BOB@example.com";
