# discard only cancels the implicit keep; an explicit keep still stores.
discard;
keep;
