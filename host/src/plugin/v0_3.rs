//! The 0.3 contract (wit/v0.3), kept so that plugins built for it (the Sieve interpreter of
//! earlier releases, say) load and behave as they always did next to 0.4 ones: its bindings,
//! and the conversions between its types and the host's. Its host interface is the newest
//! one, served by the same code (`host_api`, and `message_api` for the message resource);
//! 0.4 only added `msg.stage()` and the `refuse` action, which a 0.3 plugin cannot use.

wasmtime::component::bindgen!({
    path: "../wit/v0.3",
    world: "plugin",
    imports: {
        "mailpipe:plugin/host.kv-set": trappable,
        "mailpipe:plugin/host.kv-delete": trappable,
        "mailpipe:plugin/host.log": trappable,
    },
    exports: { default: async },
});

use self::mailpipe::plugin::types as old;
use super::bindings as now;
use crate::model::{decision as decided, message as parts};

pub fn info(i: PluginInfo) -> now::PluginInfo {
    super::bindings::info_to_newest!(i, self::mailpipe::plugin::types)
}

pub fn problem(p: ConfigProblem) -> now::ConfigProblem {
    now::ConfigProblem {
        key: p.key,
        message: p.message,
    }
}

pub fn action(a: Action) -> decided::Action {
    super::bindings::action_to_model!(a, self::mailpipe::plugin::types, {
        t::Action::Notify(n) => super::bindings::notify_to_model!(n, self::mailpipe::plugin::types),
    })
}

// The message resource's values, for `message_api`.

impl From<parts::Header> for old::Header {
    fn from(h: parts::Header) -> old::Header {
        old::Header {
            name: h.name,
            value: h.value,
        }
    }
}

impl From<parts::Address> for old::Address {
    fn from(a: parts::Address) -> old::Address {
        old::Address {
            name: a.name,
            address: a.address,
        }
    }
}

impl From<&parts::Attachment> for old::Attachment {
    fn from(a: &parts::Attachment) -> old::Attachment {
        old::Attachment {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
        }
    }
}

impl From<&parts::Envelope> for old::Envelope {
    fn from(e: &parts::Envelope) -> old::Envelope {
        old::Envelope {
            return_path: e.return_path.clone(),
            recipients: e.recipients.clone(),
        }
    }
}
