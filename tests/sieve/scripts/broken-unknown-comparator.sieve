if header :comparator "i;klingon" "subject" "x" { keep; }
