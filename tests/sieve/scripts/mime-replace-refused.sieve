# replace rewrites the body: refused at load by mailpipe (its plugins edit headers only),
# and unknown to Pigeonhole 0.5: both refuse the script.
require ["mime", "foreverypart", "replace"];
foreverypart {
  if header :mime :subtype "Content-Type" "html" { replace "HTML removed"; }
}
