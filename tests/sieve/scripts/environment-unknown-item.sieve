require ["environment", "fileinto"];
if environment :contains "x-unknown-item" "" { fileinto "unknown-exists"; }
if not environment :matches "x-unknown-item" "*" { fileinto "unknown-absent"; }
