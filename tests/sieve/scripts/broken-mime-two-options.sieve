require ["mime", "foreverypart"];
foreverypart {
  if header :mime :type :subtype "Content-Type" "text" { keep; }
}
