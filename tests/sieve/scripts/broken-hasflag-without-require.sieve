if hasflag "x" { keep; }
