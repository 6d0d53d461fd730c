require "variables";
set :frob "a" "b";
