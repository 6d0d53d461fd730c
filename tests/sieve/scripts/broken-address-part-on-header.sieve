if header :domain "from" "example.org" { keep; }
