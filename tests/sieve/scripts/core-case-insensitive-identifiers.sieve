REQUIRE "fileinto";
IF HEADER :CONTAINS "Subject" "hello" { FILEINTO "Upper"; STOP; }
If Address :Domain :Is "FROM" "EXAMPLE.NET" { FileInto "Mixed"; }
