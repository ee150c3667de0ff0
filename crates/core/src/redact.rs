//! The one rule for keeping passwords in URLs out of output: every URL and every error text
//! that may echo one goes through here before it is printed or logged.
//!
//! A URL's password is the password of its userinfo (`scheme://user:password@host`) or, if it
//! has none, the value of a `password=` query parameter (libpq accepts one).

/// What a password is replaced with.
pub const REDACTED: &str = "<redacted>";

/// `url` with its password replaced by [`REDACTED`], for logs and `config` output. Without
/// `scheme://` it is not recognisably a URL, so nothing of it is shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable URL>".into();
    };
    let (authority, tail) = split_authority(rest);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) if !password.is_empty() => format!("{user}:{REDACTED}@{host}"),
            _ => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// `text` with every occurrence of `url`'s password, as written and percent-decoded,
/// replaced by [`REDACTED`]: drivers and parsers sometimes echo their input, decoded or not.
pub fn redact_in(text: &str, url: &str) -> String {
    match password_of(url) {
        Some(password) => redact_password(text, password),
        None => text.to_owned(),
    }
}

/// `text` with every occurrence of `password`, as written and percent-decoded, replaced.
pub fn redact_password(text: &str, password: &str) -> String {
    if password.is_empty() {
        return text.to_owned();
    }
    let decoded = percent_decode(password);
    let text = text.replace(password, REDACTED);
    if decoded.is_empty() {
        text
    } else {
        text.replace(decoded.as_str(), REDACTED)
    }
}

/// The password of `url` as written (see the module documentation), if it has a non-empty
/// one. A URL without `scheme://` is read as starting at its userinfo, so a mistyped URL
/// still has its password found.
pub fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, tail) = split_authority(rest);
    let from_userinfo = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password);
    let from_query = || {
        let (_, query) = tail.split_once('?')?;
        query
            .split(['&', '#'])
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("password"))
            .map(|(_, v)| v)
    };
    from_userinfo
        .filter(|p| !p.is_empty())
        .or_else(|| from_query().filter(|p| !p.is_empty()))
}

/// `user:password@host:port` and the rest (path, query, fragment).
fn split_authority(rest: &str) -> (&str, &str) {
    rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()))
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            // Both digits are < 16, so the byte cannot overflow.
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
