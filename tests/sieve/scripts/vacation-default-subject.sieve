require "vacation";
# No :subject: the reply's subject is derived from the original's.
vacation :days 2 "Away.";
