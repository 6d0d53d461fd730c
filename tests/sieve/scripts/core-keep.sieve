# The simplest script: an explicit keep.
keep;
