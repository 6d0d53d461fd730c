require ["ihave", "fileinto"];
if ihave "x-frobnicate" { frobnicate "this is never compiled"; }
elsif ihave ["fileinto", "x-nothing"] { fileinto "partial"; }
else { fileinto "no-frobnicate"; }
