redirect "Bob Builder <bob@example.com>";
