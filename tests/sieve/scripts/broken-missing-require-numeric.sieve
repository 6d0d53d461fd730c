require "relational";
if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "5" { keep; }
