require ["vacation", "vacation-seconds"];
vacation :seconds 172800 :subject "Back in two days" "Back in two days.";
