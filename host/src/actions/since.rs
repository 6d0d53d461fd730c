//! No automatic mail about old mail. A responder switched on over a mailbox of years of mail
//! must not answer everyone who ever wrote, and a forwarder must not forward the archive:
//! Sieve never does (it runs at delivery), and Gmail's responder only answers mail received
//! after its start. The host therefore sends a plugin's replies and forwards only about
//! messages that arrived (INTERNALDATE, a file's time offline) at or after a bound, by
//! default the moment that plugin was first enabled for the account or mail source
//! (recorded once in the state store by the pipeline). The plugin's
//! `send_about_mail_since` key sets another bound: a date, or "all" to answer old mail too.

use crate::config::MailSince;

/// Why no automatic mail may be sent about a message that arrived at `arrived_ms`, when the
/// bound is `since_ms`; None when it may. A message whose arrival is unknown is not held
/// back (every source we read gives one; `mailpipe test` reads files given by hand). The
/// server's clock says when IMAP mail arrived, ours when the plugin was enabled: a server
/// clock running behind holds back mail of its first moments (docs/PIPELINE.md).
pub fn blocker(arrived_ms: Option<u64>, since_ms: u64, bound: MailSince) -> Option<String> {
    let arrived = arrived_ms?;
    // INTERNALDATE has whole seconds: mail of the bound's own second is not older.
    if bound == MailSince::All || arrived / 1000 >= since_ms / 1000 {
        return None;
    }
    let day = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    };
    let since = match bound {
        MailSince::Enabled => format!("this plugin was enabled here ({})", day(since_ms)),
        _ => format!("{} (send_about_mail_since)", day(since_ms)),
    };
    Some(format!(
        "the message arrived {}, before {since}: no automatic mail about older mail \
         (send_about_mail_since = \"all\" allows it)",
        day(arrived)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_says_what_it_takes() {
        assert_eq!(MailSince::parse("enabled"), Ok(MailSince::Enabled));
        assert_eq!(MailSince::parse("all"), Ok(MailSince::All));
        assert_eq!(
            MailSince::parse("2026-12-01"),
            Ok(MailSince::Time(1_796_083_200_000))
        );
        assert_eq!(
            MailSince::parse("2026-12-01T01:00:00+01:00"),
            Ok(MailSince::Time(1_796_083_200_000))
        );
        let e = MailSince::parse("yesterday").unwrap_err();
        assert!(e.contains("\"all\"") && e.contains("2026-12-01"), "{e}");
    }

    #[test]
    fn older_mail_is_held_back_unless_all() {
        let since = 1_796_083_200_000;
        let why = blocker(Some(since - 1), since, MailSince::Enabled).unwrap();
        assert!(why.contains("before this plugin was enabled"), "{why}");
        assert!(blocker(Some(since - 1), since, MailSince::Time(since))
            .unwrap()
            .contains("send_about_mail_since"));
        assert_eq!(blocker(Some(since), since, MailSince::Enabled), None);
        assert_eq!(
            blocker(Some(since), since + 999, MailSince::Enabled),
            None,
            "same second as the bound (INTERNALDATE has no milliseconds)"
        );
        assert_eq!(blocker(Some(0), since, MailSince::All), None);
        assert_eq!(blocker(None, since, MailSince::Enabled), None);
    }
}
