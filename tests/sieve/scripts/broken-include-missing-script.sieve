require "include";
include :personal "nonexistent";
