//! `allow_send_to`: who a plugin may send mail to, as the config gives it: `$sender` (the
//! sender of the message being processed) or an address glob such as `*@example.com`. The
//! check of an address against these is `actions::recipients`.

/// One entry of `allow_send_to`.
#[derive(Debug, Clone, PartialEq)]
pub enum RecipientPattern {
    Sender,
    Glob(String),
}

impl RecipientPattern {
    pub fn parse(s: &str) -> Result<RecipientPattern, String> {
        if s == "$sender" {
            return Ok(RecipientPattern::Sender);
        }
        if s.is_empty()
            || s.chars().any(|c| c.is_control() || c.is_whitespace())
            || !s.contains('@')
        {
            return Err(format!(
                "{s:?} is neither \"$sender\" nor an address pattern like \"*@example.com\""
            ));
        }
        Ok(RecipientPattern::Glob(s.to_string()))
    }
}
