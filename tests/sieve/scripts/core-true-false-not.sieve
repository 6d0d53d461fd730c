require "fileinto";
if true { fileinto "T1"; }
if false { fileinto "F1"; }
if not false { fileinto "T2"; }
if not true { fileinto "F2"; }
