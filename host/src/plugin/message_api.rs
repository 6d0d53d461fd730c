//! The `message` resource of the 0.2 contract: a plugin reads the message part by part
//! (`msg.subject()`, `msg.header("List-Id")`, `msg.text-body()`, ...) and only what it reads
//! is decoded and copied into it: a header read decodes that field only; the bodies are
//! parsed once per message, shared by all plugins (see `plugin::readable`). The host hands each `on-message` call a borrowed handle to the one message the
//! call is about; outside a call there is none and every part reads as empty.

use wasmtime::component::Resource;

use super::bindings::mailpipe::plugin::types::{self as wit, HostMessage};
use super::bindings::{Address, Attachment, Envelope, Header};
use super::host_api::PluginState;
use crate::message::view::View;
use crate::model::message::Needs;

type Handle = Resource<wit::Message>;

/// The host's values as the contract's (`plugin::bindings`), moved, not copied again.
fn to_wit<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

impl PluginState {
    /// One part of the current message's view at `needs`' level, or its empty value.
    fn part<T: Default>(&self, needs: Needs, part: impl FnOnce(&View) -> T) -> T {
        self.message()
            .map(|m| part(m.view(needs)))
            .unwrap_or_default()
    }

    /// The addresses of one field of the current message.
    fn addresses(&self, field: &str) -> Vec<Address> {
        self.message()
            .map(|m| to_wit(m.addresses(field)))
            .unwrap_or_default()
    }
}

impl HostMessage for PluginState {
    fn message_id(&mut self, _: Handle) -> Option<String> {
        self.message()?.message_id()
    }

    fn date(&mut self, _: Handle) -> Option<i64> {
        self.message()?.date()
    }

    fn from(&mut self, _: Handle) -> Vec<Address> {
        self.addresses("From")
    }

    fn sender(&mut self, _: Handle) -> Option<Address> {
        self.addresses("Sender").into_iter().next()
    }

    fn reply_to(&mut self, _: Handle) -> Vec<Address> {
        self.addresses("Reply-To")
    }

    fn to(&mut self, _: Handle) -> Vec<Address> {
        self.addresses("To")
    }

    fn cc(&mut self, _: Handle) -> Vec<Address> {
        self.addresses("Cc")
    }

    fn subject(&mut self, _: Handle) -> Option<String> {
        self.message()?.subject()
    }

    fn header(&mut self, _: Handle, name: String) -> Option<String> {
        self.message()?.header_all(&name).next()
    }

    fn header_all(&mut self, _: Handle, name: String) -> Vec<String> {
        self.message()
            .map(|m| m.header_all(&name).collect())
            .unwrap_or_default()
    }

    fn headers(&mut self, _: Handle) -> Vec<Header> {
        self.message()
            .map(|m| to_wit(m.headers()))
            .unwrap_or_default()
    }

    fn text_body(&mut self, _: Handle) -> Option<String> {
        self.part(Needs::Bodies, |v| v.text_body.clone())
    }

    fn html_body(&mut self, _: Handle) -> Option<String> {
        self.part(Needs::Bodies, |v| v.html_body.clone())
    }

    fn attachments(&mut self, _: Handle) -> Vec<Attachment> {
        self.part(Needs::Bodies, |v| {
            v.attachments.iter().map(Attachment::from).collect()
        })
    }

    fn attachment_content(&mut self, _: Handle, index: u32) -> Option<Vec<u8>> {
        self.message()?.attachment_content(index)
    }

    fn raw(&mut self, _: Handle) -> Vec<u8> {
        self.message()
            .map(|m| m.email().raw.to_vec())
            .unwrap_or_default()
    }

    fn size(&mut self, _: Handle) -> u64 {
        self.message()
            .map(|m| m.email().raw.len() as u64)
            .unwrap_or_default()
    }

    fn mailbox(&mut self, _: Handle) -> String {
        self.message()
            .map(|m| m.email().mailbox.clone())
            .unwrap_or_default()
    }

    fn flags(&mut self, _: Handle) -> Vec<String> {
        self.message()
            .map(|m| m.email().flags.clone())
            .unwrap_or_default()
    }

    fn envelope(&mut self, _: Handle) -> Envelope {
        self.message()
            .map(|m| Envelope::from(m.envelope()))
            .unwrap_or(Envelope {
                return_path: None,
                recipients: Vec::new(),
            })
    }

    /// Handles are only lent to a call (`borrow<message>`), never given: nothing to free.
    fn drop(&mut self, _: Handle) -> wasmtime::Result<()> {
        Ok(())
    }
}
