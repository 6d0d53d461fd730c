require ["variables", "fileinto"];
set "a" "x";
fileinto "${a}${{a}${a}}$${a}";
