require ["enotify", "fileinto"];
if valid_notify_method "mailto:someone@example.com" { fileinto "valid-mailto"; }
if valid_notify_method "xmpp:someone@example.com" { fileinto "valid-xmpp"; }
if notify_method_capability "mailto:someone@example.com" "online" ["yes", "maybe"] { fileinto "online"; }
