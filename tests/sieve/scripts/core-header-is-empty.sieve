require "fileinto";
if header :is "subject" "" { fileinto "empty-subject"; }
if header :contains "subject" "" { fileinto "has-subject"; }
if header :matches "x-empty" "" { fileinto "x-empty"; }
