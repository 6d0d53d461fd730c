//! Helpers shared by the fuzz targets in `fuzz_targets/`. They look at bytes the way a mail
//! reader does and deliberately share no code with the host, so a target checks the host's
//! parser against an independent reading rather than against itself.

/// Byte offset of the first empty line (a line that is just "\n" or "\r\n"): where the header
/// block ends and the separator + body begin. None when there is no empty line.
pub fn first_empty_line(raw: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        if line == b"\n" || line == b"\r\n" {
            return Some(pos);
        }
        pos = end;
    }
    None
}

/// The body of `raw` with its separator line: everything from the first empty line on
/// (empty when there is none).
pub fn body_of(raw: &[u8]) -> &[u8] {
    first_empty_line(raw).map_or(&raw[raw.len()..], |p| &raw[p..])
}

/// One field of a header block as written by a builder: its name and the raw lines (without
/// their line ends) it spans.
#[derive(Debug)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub lines: Vec<&'a [u8]>,
}

/// Split a header block that a builder wrote with `eol` line ends into fields. Every line must
/// end with `eol`; a line starting with SP/HT continues the field before it. Returns an error
/// describing the first line that is not clean: one holding a CR, LF or NUL of its own, a
/// first line that is a continuation, or a field line without a name and colon.
pub fn split_fields<'a>(block: &'a [u8], eol: &[u8]) -> Result<Vec<Field<'a>>, String> {
    let mut fields: Vec<Field<'a>> = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let Some(end) = find(rest, eol) else {
            return Err(format!(
                "header line without a line end: {:?}",
                String::from_utf8_lossy(rest)
            ));
        };
        let line = &rest[..end];
        rest = &rest[end + eol.len()..];
        if let Some(b) = line.iter().find(|&&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!(
                "header line holds a bare {}: {:?}",
                match b {
                    b'\r' => "CR",
                    b'\n' => "LF",
                    _ => "NUL",
                },
                String::from_utf8_lossy(line)
            ));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            match fields.last_mut() {
                Some(f) => f.lines.push(line),
                None => return Err("header block starts with a continuation line".into()),
            }
            continue;
        }
        let colon = line.iter().position(|&b| b == b':');
        match colon {
            Some(c) if c > 0 && line[..c].iter().all(|&b| (33..=126).contains(&b)) => {
                fields.push(Field {
                    name: &line[..c],
                    lines: vec![line],
                })
            }
            _ => {
                return Err(format!(
                    "header line is not a field: {:?}",
                    String::from_utf8_lossy(line)
                ))
            }
        }
    }
    Ok(fields)
}

/// Position of the first occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The names of `fields`, as strings, for messages and comparisons.
pub fn names(fields: &[Field]) -> Vec<String> {
    fields
        .iter()
        .map(|f| String::from_utf8_lossy(f.name).into_owned())
        .collect()
}
