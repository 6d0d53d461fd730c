//! The vocabulary at the bottom of the house: the values every other layer speaks in and
//! that need nothing else of mailpipe. A message's parts and a plugin's decision about it
//! (`message`, `decision`), addresses (`address`), folder names and their IMAP spelling
//! (`folder`), text safe for one header field (`text`), credentials (`credentials`),
//! where mailpipe connects (`endpoint`) and failures that may be retried (`failure`). Nothing here imports another module of the crate.

pub mod address;
pub mod credentials;
pub mod decision;
pub mod endpoint;
pub mod failure;
pub mod folder;
pub mod key;
pub mod message;
pub mod text;
