require "vacation";
vacation :mime :subject "Abwesend" text:
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Ich bin nicht da. Grüße.
.
;
