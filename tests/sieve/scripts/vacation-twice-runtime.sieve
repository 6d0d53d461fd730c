require "vacation";
# A second vacation action is an error at run time.
vacation "first";
if true { vacation "second"; }
