//! `send_about_mail_since`: since when a plugin's replies and forwards may be about a
//! message (the rule itself is `actions::since`).

/// Since when a plugin's replies and forwards may be about a message (config
/// `send_about_mail_since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailSince {
    /// Since the plugin was first enabled for the account or source (the default).
    #[default]
    Enabled,
    /// Any message, however old: asked for explicitly.
    All,
    /// Messages that arrived at or after this time (ms since the epoch).
    Time(u64),
}

impl MailSince {
    /// `"enabled"`, `"all"`, a date `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<MailSince, String> {
        match s {
            "enabled" => return Ok(MailSince::Enabled),
            "all" => return Ok(MailSince::All),
            _ => {}
        }
        let time = chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| {
                    d.and_hms_opt(0, 0, 0)
                        .expect("midnight exists")
                        .and_utc()
                        .timestamp_millis()
                })
            })
            .map_err(|_| {
                format!(
                    "{s:?} is none of \"enabled\" (the default: mail that arrived since the \
                     plugin was first enabled), \"all\", a date like \"2026-12-01\" or a time \
                     like \"2026-12-01T08:00:00+01:00\""
                )
            })?;
        Ok(MailSince::Time(u64::try_from(time).unwrap_or(0)))
    }
}
