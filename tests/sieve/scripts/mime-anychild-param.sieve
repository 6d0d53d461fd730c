require ["mime", "fileinto", "variables"];
if header :mime :anychild :param "filename" :matches "content-disposition" "*.pdf" { fileinto "pdf-attachment"; }
if header :mime :anychild :param "filename" :matches "content-disposition" "*.exe" { fileinto "exe-attachment"; }
if header :mime :param "charset" :matches "content-type" "*" { fileinto "charset-${1}"; }
