require "copy";
redirect :copy "a@example.net";
redirect "b@example.net";
