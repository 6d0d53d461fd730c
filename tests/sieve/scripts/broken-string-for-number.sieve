if size :over "big" { keep; }
