//! auto-responder: a vacation auto-reply as specified by RFC 5230 (Sieve "vacation").
//!
//! Configuration:
//!
//! ```toml
//! addresses = ["me@example.com", "me@example.org"] # your addresses (required)
//! days = 7                                          # one reply per sender per N days (default 7, min 1)
//! subject = "Out of office"                         # optional; default "Auto: <original subject>"
//! body = "I am away until Monday."                  # plain-text reply (required)
//! html = "<p>I am away until Monday.</p>"           # optional HTML alternative
//! start = "2026-12-24"                              # optional: no reply before this day
//! end = "2027-01-06"                                # optional: none after this day
//! ```
//!
//! `start` and `end` are days (`YYYY-MM-DD`, midnight UTC; `end` is the last day answered) or
//! times (`2026-12-24T17:00:00Z`, `...+01:00`). The host adds its own rule on top: no reply
//! about mail that arrived before the plugin was enabled (`send_about_mail_since`).
//!
//! A reply is sent only when one of `addresses` is in To or Cc, and never to yourself, to
//! mailing lists (List-* headers, Precedence: bulk/list/junk), to automatic mail
//! (Auto-Submitted other than "no") or to robots (MAILER-DAEMON, noreply, owner-*, *-request...).
//! Each sender gets at most one reply per `days`. Robots are recognised in From, Sender,
//! Reply-To and Return-Path; a null Return-Path (`<>`, a bounce) is never answered.

use mailpipe_plugin::{
    config_problem, header, header_safe, is_direct_recipient, kv, matches_glob, sender_address,
    Action, ConfigProblem, Message, Needs, Plugin, PluginInfo, Reply,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    addresses: Vec<String>,
    #[serde(default = "default_days")]
    days: u64,
    subject: Option<String>,
    body: String,
    html: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

/// `start` / `end` as ms since the epoch: a day counts from its midnight (UTC), and `end`'s
/// day is answered whole.
fn period(config: &Config) -> Result<(i64, i64), ConfigProblem> {
    let parse = |key: &str, text: &Option<String>, end: bool| {
        match text {
        None => Ok(if end { i64::MAX } else { i64::MIN }),
        Some(t) => parse_time(t, end).ok_or_else(|| {
            config_problem(
                key,
                format!("{t:?} is neither a day like \"2026-12-24\" nor a time like \"2026-12-24T17:00:00+01:00\""),
            )
        }),
    }
    };
    let start = parse("start", &config.start, false)?;
    let end = parse("end", &config.end, true)?;
    if start >= end {
        return Err(config_problem("end", "comes before start"));
    }
    Ok((start, end))
}

/// A day `YYYY-MM-DD` (its midnight UTC, or the next midnight for an `end`) or an RFC 3339
/// time `YYYY-MM-DDTHH:MM:SS` with `Z` or `+HH:MM` / `-HH:MM`.
fn parse_time(text: &str, end_of_day: bool) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(y, m, day);
    let Some(time) = time else {
        return Some((days + i64::from(end_of_day)) * 86_400_000);
    };
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, o) = time.split_at(i);
        let (oh, om) = o[1..].split_once(':')?;
        let sign = if o.starts_with('-') { -1 } else { 1 };
        (c, sign * (num(oh)? * 3600 + num(om)? * 60))
    };
    let mut c = clock.split(':');
    let (h, mi) = (num(c.next()?)?, num(c.next()?)?);
    let sec = c.next().map_or(Some(0), |s| num(s.split('.').next()?))?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn default_days() -> u64 {
    7
}

/// Local parts of addresses that belong to programs, not people (RFC 5230 section 4.6).
const ROBOTS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "listserv",
    "majordomo",
    "owner-*",
    "*-request",
];

struct AutoResponder;

impl Plugin for AutoResponder {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "auto-responder".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            needs: Needs::Headers,
        }
    }

    fn check_config() -> Vec<ConfigProblem> {
        let config: Config = match mailpipe_plugin::config_checked() {
            Ok(config) => config,
            Err(problem) => return vec![problem],
        };
        let mut problems = Vec::new();
        if config.addresses.is_empty() {
            problems.push(config_problem(
                "addresses",
                "is empty: list your own addresses (a reply goes only to mail sent to one of them)",
            ));
        }
        if let Some(i) = config.addresses.iter().position(|a| !a.contains('@')) {
            problems.push(config_problem(
                format!("addresses.{i}"),
                format!("{:?} is not an address", config.addresses[i]),
            ));
        }
        if let Err(problem) = period(&config) {
            problems.push(problem);
        }
        if config.days == 0 {
            problems.push(config_problem(
                "days",
                "must be at least 1 (one reply per sender per that many days)",
            ));
        }
        problems
    }

    fn on_message(msg: &Message) -> Result<Vec<Action>, String> {
        let config: &Config = mailpipe_plugin::config_once!(Config)?;
        let (start, end) = period(config).map_err(|p| p.message)?;
        let now = mailpipe_plugin::now_ms();
        if now < start || now >= end {
            return Ok(vec![]); // not away now
        }
        let Some(sender) = sender_address(msg) else {
            return Ok(vec![]);
        };
        if !is_direct_recipient(msg, &config.addresses) || is_from_me_or_robot(msg, config) {
            return Ok(vec![]);
        }
        if is_list_or_automatic(msg) {
            return Ok(vec![]);
        }

        // Remember whom we answered; the entry expires after `days`.
        let key = format!("replied:{}", sender.to_lowercase());
        if kv::get(&key).is_some() {
            return Ok(vec![]);
        }
        let days = config.days.max(1);
        kv::set(&key, b"1", Some(days * 86_400));

        // The subject is inbound text (an encoded word may decode to CR/LF and a fake header)
        // or config text: made header-safe, or the host would refuse the reply.
        let subject = match &config.subject {
            Some(subject) => header_safe(subject),
            None => header_safe(&format!("Auto: {}", msg.subject().unwrap_or_default())),
        };
        Ok(vec![Action::Reply(Reply {
            subject: Some(subject),
            text: config.body.clone(),
            html: config.html.clone(),
            headers: vec![],
        })])
    }
}

/// Every address the message claims to come from: From, Sender, Reply-To and the envelope
/// sender that delivery recorded in Return-Path.
fn senders(msg: &Message) -> Vec<String> {
    msg.from()
        .into_iter()
        .chain(msg.sender())
        .chain(msg.reply_to())
        .map(|a| a.address)
        .chain(msg.envelope().return_path.filter(|path| !path.is_empty()))
        .collect()
}

fn is_from_me_or_robot(msg: &Message, config: &Config) -> bool {
    senders(msg).iter().any(|address| {
        let address = address.as_str();
        let mine = config
            .addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address));
        let local_part = address.split('@').next().unwrap_or(address);
        mine || ROBOTS.iter().any(|robot| matches_glob(robot, local_part))
    })
}

/// The fields of mailing-list software (RFC 2369, RFC 2919, RFC 8058). Asked for by name:
/// reading every header of every message would cost more than the rest of this plugin.
const LIST_FIELDS: &[&str] = &[
    "List-Id",
    "List-Unsubscribe",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Owner",
    "List-Archive",
    "List-Unsubscribe-Post",
];

fn is_list_or_automatic(msg: &Message) -> bool {
    let list_header = LIST_FIELDS.iter().any(|f| msg.header(f).is_some());
    let bulk = header(msg, "Precedence").is_some_and(|p| {
        ["bulk", "list", "junk"]
            .iter()
            .any(|v| p.trim().eq_ignore_ascii_case(v))
    });
    // "Auto-Submitted: no" is the only value that marks a message written by a person.
    let automatic = header(msg, "Auto-Submitted").is_some_and(|v| {
        let keyword = v.split(';').next().unwrap_or("").trim();
        !keyword.eq_ignore_ascii_case("no")
    });
    let bounce = msg.envelope().return_path.as_deref() == Some("");
    list_header || bulk || automatic || bounce
}

mailpipe_plugin::export!(AutoResponder);
