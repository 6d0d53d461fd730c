//! Why this file exists: the `date` and `currentdate` tests (RFC 5260): reading an RFC 5322
//! date out of a header field and cutting a moment into the parts a script compares ("year",
//! "julian", "iso8601", "weekday", ...), in a given zone.

/// A moment: seconds since the epoch (UTC) and the zone offset it is shown in, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub epoch: i64,
    pub offset: i64,
}

/// `+hhmm` / `-hhmm` to an offset in seconds.
pub fn parse_zone(z: &str) -> Option<i64> {
    let b = z.as_bytes();
    if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h: i64 = z[1..3].parse().ok()?;
    let m: i64 = z[3..5].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    let s = (h * 60 + m) * 60;
    Some(if b[0] == b'-' { -s } else { s })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// RFC 5322 section 3.3 date-time, with the obsolete zone names of section 4.3; comments and
/// the day of the week are ignored. None when it does not parse.
pub fn parse_rfc5322(value: &str) -> Option<Moment> {
    // Drop comments, then split on white space and the "," after the day name.
    let mut clean = String::new();
    let mut depth = 0;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ',' => clean.push(' '),
            c => clean.push(c),
        }
    }
    let mut words: Vec<&str> = clean.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
    {
        words.remove(0);
    }
    if words.len() < 4 {
        return None;
    }
    let day: i64 = words[0].parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = MONTHS
        .iter()
        .position(|m| words[1].get(..3).is_some_and(|w| w.eq_ignore_ascii_case(m)))?
        as i64
        + 1;
    let mut year: i64 = words[2].parse().ok()?;
    if words[2].len() <= 2 {
        year += if year < 50 { 2000 } else { 1900 };
    } else if words[2].len() == 3 {
        year += 1900;
    }
    let mut t = words[3].split(':');
    let hour: i64 = t.next()?.parse().ok().filter(|h| (0..=23).contains(h))?;
    let minute: i64 = t.next()?.parse().ok().filter(|m| (0..=59).contains(m))?;
    let second: i64 = match t.next() {
        Some(s) => s.parse().ok().filter(|s| (0..=60).contains(s))?,
        None => 0,
    };
    let offset = match words.get(4) {
        None => 0,
        Some(z) => parse_zone(z).or_else(|| named_zone(z))?,
    };
    let days = days_from_civil(year, month, day);
    let epoch = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Moment { epoch, offset })
}

fn named_zone(z: &str) -> Option<i64> {
    let h = match z.to_ascii_uppercase().as_str() {
        "UT" | "GMT" | "Z" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        // Other military zones carry no reliable meaning (RFC 5322 4.3): treat as +0000.
        m if m.len() == 1 && m.chars().all(|c| c.is_ascii_alphabetic()) => 0,
        _ => return None,
    };
    Some(h * 3600)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn zone_text(offset: i64) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs() / 60;
    format!("{sign}{:02}{:02}", a / 60, a % 60)
}

/// One part of `m` as RFC 5260 section 4.2 writes it. None for an unknown part.
pub fn part(m: Moment, part: &str) -> Option<String> {
    let local = m.epoch + m.offset;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    Some(match part.to_ascii_lowercase().as_str() {
        "year" => format!("{y:04}"),
        "month" => format!("{mo:02}"),
        "day" => format!("{d:02}"),
        "date" => format!("{y:04}-{mo:02}-{d:02}"),
        // Modified Julian Day: days since 1858-11-17.
        "julian" => (days + 40_587).to_string(),
        "hour" => format!("{h:02}"),
        "minute" => format!("{mi:02}"),
        "second" => format!("{s:02}"),
        "time" => format!("{h:02}:{mi:02}:{s:02}"),
        "iso8601" => {
            let z = zone_text(m.offset);
            let z = if m.offset == 0 {
                "Z".to_string()
            } else {
                format!("{}:{}", &z[..3], &z[3..])
            };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{z}")
        }
        "std11" => {
            const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
            const MN: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            format!(
                "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} {}",
                WD[(days + 4).rem_euclid(7) as usize],
                MN[(mo - 1) as usize],
                zone_text(m.offset)
            )
        }
        "zone" => zone_text(m.offset),
        "weekday" => (days + 4).rem_euclid(7).to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_cuts() {
        let m = parse_rfc5322("Wed, 28 Oct 2009 14:15:07 +0100 (CET)").unwrap();
        assert_eq!(m.offset, 3600);
        assert_eq!(part(m, "date").unwrap(), "2009-10-28");
        assert_eq!(part(m, "time").unwrap(), "14:15:07");
        assert_eq!(part(m, "zone").unwrap(), "+0100");
        assert_eq!(part(m, "weekday").unwrap(), "3");
        assert_eq!(part(m, "julian").unwrap(), "55132");
        assert_eq!(part(m, "iso8601").unwrap(), "2009-10-28T14:15:07+01:00");
        assert_eq!(part(m, "std11").unwrap(), "Wed, 28 Oct 2009 14:15:07 +0100");
        let utc = Moment {
            epoch: m.epoch,
            offset: 0,
        };
        assert_eq!(part(utc, "hour").unwrap(), "13");
        assert!(parse_rfc5322("yesterday").is_none());
        assert!(parse_rfc5322("32 Oct 2009 10:00 +0000").is_none());
        // Found by fuzzing: a month name cut inside a multi-byte character.
        assert!(parse_rfc5322("1 Oé 2009 10:00 +0000").is_none());
        assert!(parse_rfc5322("1 €€€ 2009 10:00 +0000").is_none());
        assert_eq!(
            parse_rfc5322("1 Jan 99 00:00 GMT")
                .and_then(|m| part(m, "year"))
                .unwrap(),
            "1999"
        );
        assert_eq!(parse_zone("-0530"), Some(-19_800));
        assert_eq!(parse_zone("0530"), None);
    }
}
