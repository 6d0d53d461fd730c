require ["fileinto", "subaddress", "envelope"];
if envelope :detail :is "to" "" { fileinto "empty-detail"; }
if envelope :detail :matches "to" "*" { fileinto "has-separator"; }
if not envelope :detail :matches "to" "*" { fileinto "no-separator"; }
