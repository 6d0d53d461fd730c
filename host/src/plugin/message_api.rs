//! The `message` resource of contracts 0.2, 0.3 and 0.4 (the same interface in all three, and
//! 0.4's `stage`; served by the same code through `serve_message!`): a plugin reads the message part by part
//! (`msg.subject()`, `msg.header("List-Id")`, `msg.text-body()`, ...) and only what it reads
//! is decoded and copied into it: a header read decodes that field only; the bodies are
//! parsed once per message, shared by all plugins (see `plugin::readable`). The host hands each `on-message` call a borrowed handle to the one message the
//! call is about; outside a call there is none and every part reads as empty.

use wasmtime::component::Resource;

use super::host_api::PluginState;
use crate::message::view::View;
use crate::model::message::Needs;

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
    fn addresses<A: From<crate::model::message::Address>>(&self, field: &str) -> Vec<A> {
        self.message()
            .map(|m| to_wit(m.addresses(field)))
            .unwrap_or_default()
    }
}

/// The message resource's host side for one contract version's `types` module, with
/// `$extra` methods only that version has.
macro_rules! serve_message {
    ($($types:ident)::+ { $($extra:tt)* }) => {
        impl $($types)::+::HostMessage for PluginState {
            fn message_id(&mut self, _: Resource<$($types)::+::Message>) -> Option<String> {
                self.message()?.message_id()
            }

            fn date(&mut self, _: Resource<$($types)::+::Message>) -> Option<i64> {
                self.message()?.date()
            }

            fn from(&mut self, _: Resource<$($types)::+::Message>) -> Vec<$($types)::+::Address> {
                self.addresses("From")
            }

            fn sender(&mut self, _: Resource<$($types)::+::Message>) -> Option<$($types)::+::Address> {
                self.addresses("Sender").into_iter().next()
            }

            fn reply_to(&mut self, _: Resource<$($types)::+::Message>) -> Vec<$($types)::+::Address> {
                self.addresses("Reply-To")
            }

            fn to(&mut self, _: Resource<$($types)::+::Message>) -> Vec<$($types)::+::Address> {
                self.addresses("To")
            }

            fn cc(&mut self, _: Resource<$($types)::+::Message>) -> Vec<$($types)::+::Address> {
                self.addresses("Cc")
            }

            fn subject(&mut self, _: Resource<$($types)::+::Message>) -> Option<String> {
                self.message()?.subject()
            }

            fn header(&mut self, _: Resource<$($types)::+::Message>, name: String) -> Option<String> {
                self.message()?.header_all(&name).next()
            }

            fn header_all(&mut self, _: Resource<$($types)::+::Message>, name: String) -> Vec<String> {
                self.message()
                    .map(|m| m.header_all(&name).collect())
                    .unwrap_or_default()
            }

            fn headers(&mut self, _: Resource<$($types)::+::Message>) -> Vec<$($types)::+::Header> {
                self.message()
                    .map(|m| to_wit(m.headers()))
                    .unwrap_or_default()
            }

            fn text_body(&mut self, _: Resource<$($types)::+::Message>) -> Option<String> {
                self.part(Needs::Bodies, |v| v.text_body.clone())
            }

            fn html_body(&mut self, _: Resource<$($types)::+::Message>) -> Option<String> {
                self.part(Needs::Bodies, |v| v.html_body.clone())
            }

            fn attachments(&mut self, _: Resource<$($types)::+::Message>) -> Vec<$($types)::+::Attachment> {
                self.part(Needs::Bodies, |v| {
                    v.attachments.iter().map($($types)::+::Attachment::from).collect()
                })
            }

            fn attachment_content(&mut self, _: Resource<$($types)::+::Message>, index: u32) -> Option<Vec<u8>> {
                self.message()?.attachment_content(index)
            }

            fn raw(&mut self, _: Resource<$($types)::+::Message>) -> Vec<u8> {
                self.message()
                    .map(|m| m.email().raw.to_vec())
                    .unwrap_or_default()
            }

            fn size(&mut self, _: Resource<$($types)::+::Message>) -> u64 {
                self.message()
                    .map(|m| m.email().raw.len() as u64)
                    .unwrap_or_default()
            }

            fn mailbox(&mut self, _: Resource<$($types)::+::Message>) -> String {
                self.message()
                    .map(|m| m.email().mailbox.clone())
                    .unwrap_or_default()
            }

            fn flags(&mut self, _: Resource<$($types)::+::Message>) -> Vec<String> {
                self.message()
                    .map(|m| m.email().flags.clone())
                    .unwrap_or_default()
            }

            fn envelope(&mut self, _: Resource<$($types)::+::Message>) -> $($types)::+::Envelope {
                self.message()
                    .map(|m| $($types)::+::Envelope::from(m.envelope()))
                    .unwrap_or($($types)::+::Envelope {
                        return_path: None,
                        recipients: Vec::new(),
                    })
            }

            $($extra)*

            /// Resource<$($types)::+::Message>s are only lent to a call (`borrow<message>`), never given: nothing to free.
            fn drop(&mut self, _: Resource<$($types)::+::Message>) -> wasmtime::Result<()> {
                Ok(())
            }
        }
    };
}

serve_message!(super::bindings::mailpipe::plugin::types {
    fn stage(
        &mut self,
        _: Resource<super::bindings::mailpipe::plugin::types::Message>,
    ) -> super::bindings::Stage {
        match self.message().is_some_and(|m| m.is_at_delivery()) {
            true => super::bindings::Stage::Delivery,
            false => super::bindings::Stage::AfterDelivery,
        }
    }
});
serve_message!(super::v0_3::mailpipe::plugin::types {});
serve_message!(super::v0_2::mailpipe::plugin::types {});
