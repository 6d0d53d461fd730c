# Only comments: the implicit keep files the message into INBOX.
/* Nothing to do here. */
