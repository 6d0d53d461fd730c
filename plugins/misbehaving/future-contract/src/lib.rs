//! misbehave-future-contract: a TEST component built for `mailpipe:plugin@0.9.0`, a contract
//! version this host does not support; loading it must fail with a message that lists the
//! supported versions (tests/hardening.rs). Never deploy it.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

struct Future;

impl Guest for Future {
    fn version() -> String {
        format!("0.9.0 at {}", mailpipe::plugin::host::now_ms())
    }
}

export!(Future);
