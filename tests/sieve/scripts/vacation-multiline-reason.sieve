require "vacation";
vacation :subject "Away" text:
Hello,

I am away.
..
A line with a leading dot above.
.
;
