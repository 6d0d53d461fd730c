require "vacation";
vacation text:
no terminating dot
