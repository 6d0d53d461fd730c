require "fileinto";
if address :is "to" "" { fileinto "empty-address"; }
if address :all :contains "to" "me@" { fileinto "to-me"; }
if address :localpart :is "to" "undisclosed-recipients" { fileinto "undisclosed"; }
