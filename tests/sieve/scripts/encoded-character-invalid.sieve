require ["encoded-character", "fileinto"];
fileinto "a${hex:zz}b${unicode:}c${hex: 41 }d${HEX:42}e${hex:4}";
