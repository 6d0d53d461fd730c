require "vacation";
if header :contains "subject" "invoice" {
    vacation :handle "billing" :subject "Billing is closed" "Billing is closed.";
} else {
    vacation :handle "general" "Away.";
}
