//! The 0.3 contract (wit/v0.3), kept so that plugins built for it (the Sieve interpreter of
//! earlier releases, say) load and behave as they always did next to 0.4 ones: its bindings,
//! and the conversions between its types and the host's. Its host interface is the newest
//! one, served by the same code (`host_api`, and `message_api` for the message resource);
//! 0.4 only added `msg.stage()` and the `refuse` action, which a 0.3 plugin cannot use.

contract_bindings!("../wit/v0.3");

use crate::model::decision as decided;

super::bindings::older_info_and_problems!();

pub fn action(a: Action) -> decided::Action {
    super::bindings::action_to_model!(a, self::mailpipe::plugin::types, {
        t::Action::Notify(n) => super::bindings::notify_to_model!(n, self::mailpipe::plugin::types),
    })
}

// The message resource's values, for `message_api`.
super::bindings::message_values!(self::mailpipe::plugin::types);
