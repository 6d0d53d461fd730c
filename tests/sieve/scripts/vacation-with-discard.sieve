require "vacation";
vacation :subject "Gone" "Gone.";
discard;
