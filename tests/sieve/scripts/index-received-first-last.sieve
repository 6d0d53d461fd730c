require ["index", "variables", "fileinto"];
if header :index 1 :matches "received" "from *" { set "first" "${1}"; }
if header :index 1 :last :matches "received" "from *" { set "last" "${1}"; }
if header :index 2 :contains "received" "hop" { fileinto "second-is-hop"; }
if string :is "${first}" "" { stop; }
fileinto "idx-${first}";
