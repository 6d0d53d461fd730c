require ["environment", "fileinto"];
if environment :is "phase" "post" { fileinto "phase-post"; }
if environment :is "location" ["MDA", "MS"] { fileinto "location-delivery"; }
