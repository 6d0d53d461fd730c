require ["extracttext", "variables"];
extracttext "x";
