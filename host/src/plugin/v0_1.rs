//! The 0.1 contract (wit/v0.1), kept so that plugins built for it load and behave as they
//! always did next to 0.2 ones: its bindings, its host interface (served by the same code as
//! the newest one), and the conversions between its types and the host's internal model
//! (`crate::model`). A 0.1 plugin gets the whole message as one
//! record, built once per message and level from the same parts the 0.2 resource reads.

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "plugin",
    imports: {
        "mailpipe:plugin/host.kv-set": trappable,
        "mailpipe:plugin/host.kv-delete": trappable,
        "mailpipe:plugin/host.log": trappable,
    },
    exports: { default: async },
});

use self::mailpipe::plugin::host as old_host;
use self::mailpipe::plugin::types as old;
use super::bindings as now;
use super::host_api::PluginState;
use crate::model::{decision as decided, message as parts};

fn new_header(h: old::Header) -> parts::Header {
    parts::Header {
        name: h.name,
        value: h.value,
    }
}

pub fn info(i: PluginInfo) -> now::PluginInfo {
    now::PluginInfo {
        name: i.name,
        version: i.version,
        needs: match i.needs {
            old::Needs::Headers => now::Needs::Headers,
            old::Needs::Bodies => now::Needs::Bodies,
            old::Needs::Raw => now::Needs::Raw,
        },
    }
}

pub fn action(a: Action) -> decided::Action {
    let folder = |t: old::FolderTarget| decided::FolderTarget {
        folder: t.folder,
        create: t.create,
    };
    match a {
        Action::Keep => decided::Action::Keep,
        Action::Discard => decided::Action::Discard,
        Action::FileInto(t) => decided::Action::FileInto(folder(t)),
        Action::CopyInto(t) => decided::Action::CopyInto(folder(t)),
        Action::AddFlags(f) => decided::Action::AddFlags(f),
        Action::RemoveFlags(f) => decided::Action::RemoveFlags(f),
        Action::SetHeader(h) => decided::Action::SetHeader(new_header(h)),
        Action::AddHeader(h) => decided::Action::AddHeader(new_header(h)),
        Action::RemoveHeader(n) => decided::Action::RemoveHeader(n),
        Action::SetSubject(s) => decided::Action::SetSubject(s),
        Action::Reply(r) => decided::Action::Reply(decided::Reply {
            subject: r.subject,
            text: r.text,
            html: r.html,
            headers: r.headers.into_iter().map(new_header).collect(),
        }),
        Action::Forward(f) => decided::Action::Forward(decided::Forward {
            to: f.to,
            mode: match f.mode {
                old::ForwardMode::Redirect => decided::ForwardMode::Redirect,
                old::ForwardMode::Attachment => decided::ForwardMode::Attachment,
            },
            note: f.note,
        }),
        Action::Stop => decided::Action::Stop,
    }
}

impl old::Host for PluginState {}

/// The 0.1 host interface is the newest one plus `raw-message`.
impl old_host::Host for PluginState {
    fn log(&mut self, level: old_host::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            old_host::LogLevel::Debug => now::LogLevel::Debug,
            old_host::LogLevel::Info => now::LogLevel::Info,
            old_host::LogLevel::Warn => now::LogLevel::Warn,
            old_host::LogLevel::Error => now::LogLevel::Error,
        };
        now::mailpipe::plugin::host::Host::log(self, level, message)
    }

    fn now_ms(&mut self) -> i64 {
        now::mailpipe::plugin::host::Host::now_ms(self)
    }

    fn config_json(&mut self) -> String {
        now::mailpipe::plugin::host::Host::config_json(self)
    }

    fn config_string(&mut self, key: String) -> Option<String> {
        now::mailpipe::plugin::host::Host::config_string(self, key)
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        now::mailpipe::plugin::host::Host::kv_get(self, key)
    }

    fn kv_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> wasmtime::Result<()> {
        now::mailpipe::plugin::host::Host::kv_set(self, key, value, ttl_seconds)
    }

    fn kv_delete(&mut self, key: String) -> wasmtime::Result<()> {
        now::mailpipe::plugin::host::Host::kv_delete(self, key)
    }

    /// Only for plugins that declared `needs: raw`, as 0.1 promises; empty for the others.
    fn raw_message(&mut self) -> Vec<u8> {
        self.raw_for_0_1()
    }
}
