if header :contains "subject" ["a", "b" { keep; }
