require "vacation";
vacation :subject "" "Empty subject given.";
