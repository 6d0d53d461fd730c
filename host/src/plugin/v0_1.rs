//! The 0.1 contract (wit/v0.1), kept so that plugins built for it load and behave as they
//! always did next to 0.2 ones: its bindings, its host interface (served by the same code as
//! the newest one), and the conversions between its types and the host's internal model
//! (`crate::model`). A 0.1 plugin gets the whole message as one
//! record, built once per message and level from the same parts the 0.2 resource reads.

contract_bindings!("../wit/v0.1");

use super::bindings as now;
use crate::model::decision as decided;

pub fn info(i: PluginInfo) -> now::PluginInfo {
    super::bindings::info_to_newest!(i, self::mailpipe::plugin::types)
}

pub fn action(a: Action) -> decided::Action {
    super::bindings::action_to_model!(a, self::mailpipe::plugin::types, {})
}
