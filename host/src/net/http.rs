//! The little HTTP mailpipe speaks: form POSTs to an OAuth2 provider's token and device
//! endpoints (RFC 6749, RFC 8628) and reading their JSON answers. Two requests per hour do
//! not justify an HTTP stack in the binary; this is HTTP/1.1 with `Connection: close`, over
//! the same verified TLS as IMAP and SMTP. Plain `http://` is accepted only for loopback
//! (the test bed's provider), because a token endpoint receives secrets.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls;
use crate::model::endpoint::Url;

/// Largest answer read from an endpoint (token answers are a few hundred bytes).
const MAX_RESPONSE: usize = 1 << 20;
/// Deadline of one request, connecting included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `application/x-www-form-urlencoded` for `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
pub fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `a=b&c=%20d` (a query string or a form body); `+` is a space.
pub fn parse_query(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// POST a form body to `url` and read the whole answer. `basic`: HTTP Basic credentials
/// (client id and secret), when the endpoint wants them that way.
pub async fn post_form(
    url: &Url,
    body: &str,
    basic: Option<(&str, &str)>,
) -> Result<Response, String> {
    match tokio::time::timeout(HTTP_TIMEOUT, exchange(url, body, basic)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{}: no answer within {} s",
            url.origin(),
            HTTP_TIMEOUT.as_secs()
        )),
    }
}

async fn exchange(url: &Url, body: &str, basic: Option<(&str, &str)>) -> Result<Response, String> {
    use base64::Engine;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", url.origin());
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| fail(&e))?;
    let _ = tcp.set_nodelay(true);
    let host_header = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: mailpipe/{}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if let Some((user, password)) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            percent(user),
            percent(password)
        ));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let raw = if url.https {
        let client = tls::client(None, None).map_err(|e| fail(&e))?;
        let stream = tls::handshake(tcp, &url.host, &client)
            .await
            .map_err(|e| fail(&e))?;
        send(stream, request.as_bytes()).await
    } else {
        send(tcp, request.as_bytes()).await
    }
    .map_err(|e| fail(&e))?;
    parse_response(&raw).map_err(|e| fail(&e))
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // Servers that close TLS without close_notify: what came is complete or the
            // framing below says it is not.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_RESPONSE {
            return Err(std::io::Error::other("answer larger than 1 MiB"));
        }
    }
}

/// Status line, headers, and the body framed by Content-Length, chunked encoding or the end
/// of the connection.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = memchr::memmem::find(raw, b"\r\n\r\n").ok_or("incomplete HTTP answer")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "HTTP header is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                crate::model::text::clean_text(status_line)
            )
        })?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n).ok_or("the answer ended early")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = memchr::memmem::find(data, b"\r\n").ok_or("bad chunked answer")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("the answer ended early")?);
        data = data.get(size + 2..).ok_or("the answer ended early")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://oauth2.googleapis.com/token").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "oauth2.googleapis.com", 443, "/token")
        );
        let u = Url::parse("http://127.0.0.1:10080/token?x=1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (10080, "/token?x=1"));
        let u = Url::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/")
        );
        assert!(
            Url::parse("http://example.com/token").is_err(),
            "plain http off loopback"
        );
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("https://user:pw@example.com/").is_err());
        assert!(Url::parse("https://example.com/a b").is_err());
        assert!(Url::parse("https://example.com:99999/").is_err());
    }

    #[test]
    fn forms_round_trip() {
        let body = form(&[("a b", "c&d=é"), ("scope", "x y")]);
        assert_eq!(body, "a%20b=c%26d%3D%C3%A9&scope=x%20y");
        assert_eq!(
            parse_query(&body),
            vec![
                ("a b".to_string(), "c&d=é".to_string()),
                ("scope".to_string(), "x y".to_string())
            ]
        );
        assert_eq!(parse_query("q=%zz+1%"), vec![("q".into(), "%zz 1%".into())]);
    }

    #[test]
    fn responses_by_length_chunks_and_close() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"{\"a\"}"[..]));
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(r.body, b"all of it");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"SSH-2.0 hello\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
