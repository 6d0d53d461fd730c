//! Rust bindings for the newest WIT contract, `wit/v0.4` (`mailpipe:plugin@0.4.0`), generated
//! by wasmtime's `bindgen!`, and the conversions between its types and the host's own
//! (`crate::model`): the contract is an edge, not the model. Exports are async (the host
//! runs plugins on tokio and interrupts them by epoch); host imports are plain synchronous
//! calls; `kv-set`, `kv-delete` and `log` may trap a plugin that exceeds its quotas. The
//! `message` resource is served by `message_api`.

contract_bindings!("../wit/v0.4");

pub use self::mailpipe::plugin::host::LogLevel;
// `Action`, `ConfigProblem`, `Message` and `PluginInfo` are at the root already (the world
// uses them).
pub use self::mailpipe::plugin::types::{
    Address, Attachment, Envelope, FolderTarget, Forward, ForwardMode, Header, Needs, Notification,
    Reply, Stage,
};

use crate::model::{decision as model, message as parts};

/// A contract version's `action` in the model's terms: the cases every version has, and the
/// arms `$extra` adds for cases only some versions have (`t` names the version's types).
macro_rules! action_to_model {
    ($a:expr, $($m:ident)::+, { $($extra:tt)* }) => {{
        use $($m)::+ as t;
        use $crate::model::decision as model;
        let folder = |x: t::FolderTarget| model::FolderTarget {
            folder: x.folder,
            create: x.create,
        };
        let header = |h: t::Header| $crate::model::message::Header {
            name: h.name,
            value: h.value,
        };
        match $a {
            t::Action::Keep => model::Action::Keep,
            t::Action::Discard => model::Action::Discard,
            t::Action::FileInto(x) => model::Action::FileInto(folder(x)),
            t::Action::CopyInto(x) => model::Action::CopyInto(folder(x)),
            t::Action::AddFlags(f) => model::Action::AddFlags(f),
            t::Action::RemoveFlags(f) => model::Action::RemoveFlags(f),
            t::Action::SetHeader(h) => model::Action::SetHeader(header(h)),
            t::Action::AddHeader(h) => model::Action::AddHeader(header(h)),
            t::Action::RemoveHeader(n) => model::Action::RemoveHeader(n),
            t::Action::SetSubject(s) => model::Action::SetSubject(s),
            t::Action::Reply(r) => model::Action::Reply(model::Reply {
                subject: r.subject,
                text: r.text,
                html: r.html,
                headers: r.headers.into_iter().map(header).collect(),
            }),
            t::Action::Forward(f) => model::Action::Forward(model::Forward {
                to: f.to,
                mode: match f.mode {
                    t::ForwardMode::Redirect => model::ForwardMode::Redirect,
                    t::ForwardMode::Attachment => model::ForwardMode::Attachment,
                },
                note: f.note,
            }),
            t::Action::Stop => model::Action::Stop,
            $($extra)*
        }
    }};
}
pub(crate) use action_to_model;

/// An older contract version's `plugin-info` as the newest one's (`$($m)::+`: its types).
macro_rules! info_to_newest {
    ($i:expr, $($m:ident)::+) => {{
        use $($m)::+ as t;
        use $crate::plugin::bindings as now;
        now::PluginInfo {
            name: $i.name,
            version: $i.version,
            needs: match $i.needs {
                t::Needs::Headers => now::Needs::Headers,
                t::Needs::Bodies => now::Needs::Bodies,
                t::Needs::Raw => now::Needs::Raw,
            },
        }
    }};
}
pub(crate) use info_to_newest;

/// `info` and `problem` of an older contract version with `check-config` (0.2 and later):
/// its plugin info and config problems as the newest version's, in the module that holds
/// that version's bindings.
macro_rules! older_info_and_problems {
    () => {
        pub fn info(i: PluginInfo) -> $crate::plugin::bindings::PluginInfo {
            $crate::plugin::bindings::info_to_newest!(i, self::mailpipe::plugin::types)
        }

        pub fn problem(p: ConfigProblem) -> $crate::plugin::bindings::ConfigProblem {
            $crate::plugin::bindings::ConfigProblem {
                key: p.key,
                message: p.message,
            }
        }
    };
}
pub(crate) use older_info_and_problems;

/// The message resource's values (`message_api`) in an older contract version's types
/// (`$($m)::+`), the same records as the newest version's.
macro_rules! message_values {
    ($($m:ident)::+) => {
        impl From<$crate::model::message::Header> for $($m)::+::Header {
            fn from(h: $crate::model::message::Header) -> Self {
                Self {
                    name: h.name,
                    value: h.value,
                }
            }
        }

        impl From<$crate::model::message::Address> for $($m)::+::Address {
            fn from(a: $crate::model::message::Address) -> Self {
                Self {
                    name: a.name,
                    address: a.address,
                }
            }
        }

        impl From<&$crate::model::message::Attachment> for $($m)::+::Attachment {
            fn from(a: &$crate::model::message::Attachment) -> Self {
                Self {
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    size: a.size,
                }
            }
        }

        impl From<&$crate::model::message::Envelope> for $($m)::+::Envelope {
            fn from(e: &$crate::model::message::Envelope) -> Self {
                Self {
                    return_path: e.return_path.clone(),
                    recipients: e.recipients.clone(),
                }
            }
        }
    };
}
pub(crate) use message_values;

/// Contract 0.3's `notify` (also in 0.4) in the model's terms; `$($m)::+`: the version's types.
macro_rules! notify_to_model {
    ($n:expr, $($m:ident)::+) => {{
        let n = $n;
        $crate::model::decision::Action::Notify($crate::model::decision::Notification {
            to: n.to,
            subject: n.subject,
            text: n.text,
            headers: n
                .headers
                .into_iter()
                .map(|h: $($m)::+::Header| $crate::model::message::Header {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
        })
    }};
}
pub(crate) use notify_to_model;

impl From<Action> for model::Action {
    fn from(a: Action) -> model::Action {
        action_to_model!(a, self::mailpipe::plugin::types, {
            t::Action::Notify(n) => notify_to_model!(n, self::mailpipe::plugin::types),
            t::Action::Refuse(reason) => model::Action::Refuse(reason),
        })
    }
}

impl From<Header> for parts::Header {
    fn from(h: Header) -> parts::Header {
        parts::Header {
            name: h.name,
            value: h.value,
        }
    }
}

// The message resource's values, for `message_api`.
message_values!(self::mailpipe::plugin::types);

impl From<Needs> for parts::Needs {
    fn from(n: Needs) -> parts::Needs {
        match n {
            Needs::Headers => parts::Needs::Headers,
            Needs::Bodies => parts::Needs::Bodies,
            Needs::Raw => parts::Needs::Raw,
        }
    }
}

impl From<LogLevel> for model::LogLevel {
    fn from(l: LogLevel) -> model::LogLevel {
        match l {
            LogLevel::Debug => model::LogLevel::Debug,
            LogLevel::Info => model::LogLevel::Info,
            LogLevel::Warn => model::LogLevel::Warn,
            LogLevel::Error => model::LogLevel::Error,
        }
    }
}
