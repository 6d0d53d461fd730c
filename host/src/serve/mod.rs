//! Why this file exists: the servers the daemon offers, apart from the sources it reads mail
//! from: today `managesieve` (RFC 5804), where users edit their accounts' Sieve scripts with
//! the clients they already have (Roundcube, Thunderbird, sieve-connect). Each speaks its
//! protocol over any byte stream; listening and TLS are the daemon's business.

pub mod managesieve;
