//! Why this file exists: plugins have no stdout worth reading; these write to the host's log,
//! which tags each line with the plugin name and the message id.

use crate::bindings::mailpipe::plugin::host::{self, LogLevel};

pub fn debug(msg: impl AsRef<str>) {
    host::log(LogLevel::Debug, msg.as_ref());
}

pub fn info(msg: impl AsRef<str>) {
    host::log(LogLevel::Info, msg.as_ref());
}

pub fn warn(msg: impl AsRef<str>) {
    host::log(LogLevel::Warn, msg.as_ref());
}

pub fn error(msg: impl AsRef<str>) {
    host::log(LogLevel::Error, msg.as_ref());
}
