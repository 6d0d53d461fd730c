require "vacation";
vacation :subject "Abwesend – Grüße aus Köln" "Ich bin im Urlaub.";
