require "fileinto";
if address :is ["from", "sender", "reply-to", "resent-from"] "secretary@example.org" { fileinto "sender"; }
if address :is ["to", "cc", "bcc", "resent-to"] "me@example.com" { fileinto "direct"; }
