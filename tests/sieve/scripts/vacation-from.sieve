require "vacation";
vacation :from "Me Myself <me@example.com>" :subject "Away" "Away.";
