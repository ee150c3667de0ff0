//! `prometheus_headers`: extra request headers (the tenant of Mimir, Cortex or Thanos, say).
//! Their values may be credentials, so neither `Debug`, the `config` output nor an error
//! shows one; the tenant headers are the exception, being identifiers and not secrets.

use std::collections::BTreeMap;
use std::fmt;

use figment::value::Value;
use http::{HeaderName, HeaderValue};
use idle_scaler_core::ConfigError;
use idle_scaler_core::config::Reader;
use idle_scaler_core::redact::REDACTED;
use serde::{Deserialize, Serialize};

const KEY: &str = "prometheus_headers";

const ALLOWED: &str = "Name=value pairs separated by commas (a TOML table in a file): header names \
     as HTTP allows, values of visible ASCII, each name once, none of Host, Content-Type, \
     Content-Length, Accept, Connection, Transfer-Encoding";

/// The headers the client sets itself: a second value would break the request.
const RESERVED: [&str; 6] = [
    "host",
    "content-type",
    "content-length",
    "accept",
    "connection",
    "transfer-encoding",
];

/// Header names whose values are shown: tenant identifiers (Mimir and Cortex; Thanos's
/// default), never credentials.
const SHOWN: [&str; 2] = ["x-scope-orgid", "thanos-tenant"];

/// Header names and values, in the spelling given; `Debug` hides the values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted().0).finish()
    }
}

impl Headers {
    /// The same names, every value replaced by `<redacted>` but the tenants'.
    pub fn redacted(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(name, value)| {
                    let shown = SHOWN.contains(&name.to_ascii_lowercase().as_str());
                    let value = if shown {
                        value.clone()
                    } else {
                        REDACTED.into()
                    };
                    (name.clone(), value)
                })
                .collect(),
        )
    }

    /// Whether a header called `name` (any case) is set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.keys().any(|k| k.eq_ignore_ascii_case(name))
    }

    /// The pairs as the client sends them; every value is marked sensitive so that hyper
    /// never prints it either.
    pub fn to_http(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let mut value = HeaderValue::from_str(value).ok()?;
                let shown = SHOWN.contains(&name.to_ascii_lowercase().as_str());
                value.set_sensitive(!shown);
                Some((HeaderName::from_bytes(name.as_bytes()).ok()?, value))
            })
            .collect()
    }

    /// Reads and checks the key: a `Name=value,...` string (the environment) or a table.
    pub(super) fn read(read: &Reader, raw: &Value) -> Result<Self, ConfigError> {
        let refuse = |shown: String| refuse(read, ALLOWED, shown);
        let pairs: Vec<(String, String)> = match raw {
            Value::String(_, s) => s
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| match entry.split_once('=') {
                    Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
                    None => Err(refuse(format!("{} without =value", name_shown(entry)))),
                })
                .collect::<Result<_, _>>()?,
            Value::Dict(_, table) => table
                .iter()
                .map(|(name, value)| match value.as_str() {
                    Some(v) => Ok((name.trim().to_owned(), v.trim().to_owned())),
                    None => Err(refuse(format!("{} = (not a string)", name_shown(name)))),
                })
                .collect::<Result<_, _>>()?,
            Value::Empty(..) => Vec::new(),
            _ => return Err(refuse(format!("{REDACTED} (neither a string nor a table)"))),
        };
        let mut headers = BTreeMap::new();
        for (name, value) in pairs {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(refuse(format!("header {}", name_shown(&name))));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str()) {
                return Err(refuse(format!(
                    "header {name:?}, which the client sets itself"
                )));
            }
            if value.is_empty() || HeaderValue::from_str(&value).is_err() {
                return Err(refuse(format!(
                    "header {name:?} = {REDACTED} (empty, or not visible ASCII)"
                )));
            }
            if headers
                .keys()
                .any(|k: &String| k.eq_ignore_ascii_case(&name))
            {
                return Err(refuse(format!("header {name:?} given twice")));
            }
            headers.insert(name, value);
        }
        Ok(Self(headers))
    }
}

/// The error for the key, showing `shown` in place of the value, which may hold credentials.
pub(super) fn refuse(read: &Reader, allowed: &'static str, shown: String) -> ConfigError {
    let mut error = read.invalid(KEY, allowed);
    if let ConfigError::Invalid { value, .. } = &mut error {
        *value = shown;
    }
    error
}

/// A header name for an error message: as given while it is a valid token, then only the
/// first character that is not. What follows it may be a value pasted with the wrong
/// separator (`Authorization: Bearer ...`), so it is never shown.
fn name_shown(name: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let head: String = name.chars().take_while(|c| valid(*c)).collect();
    match name[head.len()..].chars().next() {
        None => format!("{head:?}"),
        Some(bad) => format!("{head:?} followed by {bad:?} and {REDACTED}"),
    }
}
