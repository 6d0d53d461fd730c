require "vacation";
if not anyof (header :contains "subject" ["invoice", "digest"], exists "list-id") {
    vacation :days 3 :subject "Away" "Away.";
}
