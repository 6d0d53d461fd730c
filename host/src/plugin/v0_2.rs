//! The 0.2 contract (wit/v0.2), kept so that plugins built for it load and behave as they
//! always did next to newer ones: its bindings, and the conversions between its types and the
//! host's (the newest bindings and `crate::model`). Its host interface is the newest one,
//! served by the same code (`host_api`, and `message_api` for the message resource); 0.3
//! added the `notify` action, 0.4 `stage` and `refuse`, which a 0.2 plugin cannot use.

contract_bindings!("../wit/v0.2");

use crate::model::decision as decided;

super::bindings::older_info_and_problems!();

pub fn action(a: Action) -> decided::Action {
    super::bindings::action_to_model!(a, self::mailpipe::plugin::types, {})
}

// The message resource's values, for `message_api`.
super::bindings::message_values!(self::mailpipe::plugin::types);
