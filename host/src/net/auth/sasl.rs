//! The SASL messages of the two OAuth2 mechanisms providers accept: XOAUTH2 (Google's and
//! Microsoft's, de facto) and OAUTHBEARER (RFC 7628). IMAP (AUTHENTICATE) and SMTP (AUTH)
//! carry the same bytes; only the framing differs, and that stays with each protocol. Both
//! sides: what mailpipe sends as a client, and what it reads as a server (ManageSieve).

use crate::model::credentials::Auth;

/// The client's first (and only) message for `mechanism`, or why it cannot be built.
pub fn initial_response(
    mechanism: Auth,
    user: &str,
    host: &str,
    port: u16,
    token: &str,
) -> Result<Vec<u8>, String> {
    if user.chars().any(char::is_control) {
        return Err("the user name contains control characters".into());
    }
    // RFC 6750 b64token: what a bearer token may contain.
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
    {
        return Err("the access token is empty or contains characters a token cannot have".into());
    }
    Ok(match mechanism {
        Auth::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        Auth::Oauthbearer => {
            // RFC 5801 saslname: "," and "=" are escaped in the authorization identity.
            let name = user.replace('=', "=3D").replace(',', "=2C");
            format!("n,a={name},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
        }
        Auth::Password => return Err("not an OAuth2 mechanism".into()),
    }
    .into_bytes())
}

/// What the client answers to the server's error challenge, so the server can finish the
/// exchange with its failure status: nothing for XOAUTH2, a single ^A for OAUTHBEARER
/// (RFC 7628 section 3.2.3).
pub fn abort_response(mechanism: Auth) -> &'static [u8] {
    match mechanism {
        Auth::Oauthbearer => b"\x01",
        _ => b"",
    }
}

/// The mechanism's name on the wire.
pub fn name(mechanism: Auth) -> &'static str {
    match mechanism {
        Auth::Xoauth2 => "XOAUTH2",
        Auth::Oauthbearer => "OAUTHBEARER",
        Auth::Password => "PLAIN",
    }
}

/// The server's error challenge in words: `{"status":"401","schemes":"bearer",...}` becomes
/// "status 401"; anything else is shown cleaned.
pub fn describe_error(challenge: &[u8]) -> String {
    let text = String::from_utf8_lossy(challenge);
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => {
            let status = v
                .get("status")
                .map(|s| s.as_str().map(str::to_string).unwrap_or(s.to_string()))
                .unwrap_or_default();
            let mut out = format!("the server says the token is not valid (status {status}");
            if let Some(scope) = v.get("scope").and_then(|s| s.as_str()) {
                out.push_str(&format!(", needed scope {scope}"));
            }
            out.push(')');
            crate::model::text::clean_text(&out)
        }
        Err(_) => crate::model::text::clean_text(&text),
    }
}

/// A client's message for `mechanism` as a server reads it: (user, token). The user is the
/// authorization identity (OAUTHBEARER's `a=`, XOAUTH2's `user=`); channel binding is refused.
pub fn parse_initial_response(mechanism: Auth, message: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
    let (user, fields) = match mechanism {
        Auth::Oauthbearer => {
            // gs2-header: "n," or "y," then "a=NAME," (optional in RFC 7628, needed here).
            let rest = text
                .strip_prefix("n,")
                .or_else(|| text.strip_prefix("y,"))
                .ok_or("channel binding is not offered (a gs2 header of n, or y,)")?;
            let (authz, fields) = rest.split_once(",\x01").ok_or("no gs2 header")?;
            let name = authz
                .strip_prefix("a=")
                .ok_or("no authorization identity (a=)")?;
            let user = name.replace("=2C", ",").replace("=3D", "=");
            (user, fields)
        }
        Auth::Xoauth2 => {
            let rest = text.strip_prefix("user=").ok_or("no user=")?;
            let (user, fields) = rest.split_once('\x01').ok_or("no fields")?;
            (user.to_string(), fields)
        }
        Auth::Password => return Err("not an OAuth2 mechanism".into()),
    };
    let token = fields
        .split('\x01')
        .find_map(|f| f.strip_prefix("auth="))
        .and_then(|a| {
            let (scheme, token) = a.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .ok_or("no auth=Bearer field")?;
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err("an empty user name or one with control characters".into());
    }
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
    {
        return Err("the token is empty or has characters a token cannot have".into());
    }
    Ok((user, token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_both_mechanisms() {
        let x = initial_response(Auth::Xoauth2, "a@b.test", "h", 993, "ya29.T-_~+/=").unwrap();
        assert_eq!(x, b"user=a@b.test\x01auth=Bearer ya29.T-_~+/=\x01\x01");
        let o =
            initial_response(Auth::Oauthbearer, "a,=b@c.test", "imap.c.test", 993, "t").unwrap();
        assert_eq!(
            o,
            b"n,a=a=2C=3Db@c.test,\x01host=imap.c.test\x01port=993\x01auth=Bearer t\x01\x01"
        );
        assert!(initial_response(Auth::Xoauth2, "a@b", "h", 1, "tok\x01en").is_err());
        assert!(initial_response(Auth::Xoauth2, "a@b", "h", 1, "").is_err());
        assert!(initial_response(Auth::Xoauth2, "a\r\n@b", "h", 1, "t").is_err());
        assert_eq!(abort_response(Auth::Oauthbearer), b"\x01");
        assert_eq!(abort_response(Auth::Xoauth2), b"");
    }

    #[test]
    fn error_challenges_in_words() {
        let d = describe_error(br#"{"status":"401","schemes":"bearer","scope":"mail"}"#);
        assert_eq!(
            d,
            "the server says the token is not valid (status 401, needed scope mail)"
        );
        assert_eq!(describe_error(b"odd\r\nthing"), "odd thing");
    }

    #[test]
    fn a_server_reads_what_a_client_sends() {
        for mech in [Auth::Xoauth2, Auth::Oauthbearer] {
            let m = initial_response(mech, "a,b=c@example.test", "imap.test", 993, "ya29.T-k_n~")
                .unwrap();
            assert_eq!(
                parse_initial_response(mech, &m).unwrap(),
                ("a,b=c@example.test".to_string(), "ya29.T-k_n~".to_string())
            );
        }
        for (mech, bad) in [
            (
                Auth::Oauthbearer,
                "p=tls-unique,a=u,\x01auth=Bearer t\x01\x01",
            ),
            (Auth::Oauthbearer, "n,,\x01auth=Bearer t\x01\x01"),
            (Auth::Oauthbearer, "n,a=u,\x01auth=Basic dTpw\x01\x01"),
            (Auth::Xoauth2, "user=u\x01auth=Bearer t\r\nX\x01\x01"),
            (Auth::Xoauth2, "user=\x01auth=Bearer t\x01\x01"),
            (Auth::Xoauth2, "auth=Bearer t\x01\x01"),
        ] {
            assert!(
                parse_initial_response(mech, bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
    }
}
