require ["foreverypart"];
if header :mime "Content-Type" "text/plain" { keep; }
