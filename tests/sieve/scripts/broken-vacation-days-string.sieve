require "vacation";
vacation :days "seven" "away";
