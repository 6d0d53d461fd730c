require ["fileinto", "mailbox", "imap4flags", "variables", "envelope", "subaddress", "vacation", "relational", "comparator-i;ascii-numeric"];
# The shape Roundcube's managesieve plugin writes: one "# rule:[name]" per rule.
# Run it on the sample mailbox:  mailpipe test examples/rules.sieve examples/maildir
# or in a config:                [[plugin]]  name = "rules"  sieve = "examples/rules.sieve"

# rule:[mailing lists, one folder each]
if header :matches "List-Id" "*<*.*>*" {
    set :lower "list" "${2}";
    fileinto :create "Lists/${list}";
    stop;
}
# rule:[plus addresses: me+shop@ goes to Shopping]
if address :detail :is "to" "shop" {
    fileinto :create "Shopping";
}
# rule:[spam score]
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "5" {
    fileinto :create "Junk";
    stop;
}
# rule:[flag mail from the boss]
if address :is "from" "boss@example.com" {
    addflag "\\Flagged";
}
# rule:[away]
vacation :days 7 :addresses ["alice@example.com"] :subject "Away until Monday"
  "I am away until Monday and will answer then.";
