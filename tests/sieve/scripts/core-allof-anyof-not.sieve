require "fileinto";
if allof (anyof (header :contains "subject" "report", header :contains "subject" "digest",
                 header :contains "subject" "release"),
          not exists "x-spam-flag",
          not anyof (size :over 50K, header :is "precedence" "junk")) {
    fileinto "Reading";
}
