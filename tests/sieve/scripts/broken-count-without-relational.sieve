if header :count "gt" "received" "2" { keep; }
