//! Extraction: the sources, the unknown-key check and the typed reads of single keys (the
//! job's rules are the table in `rules.rs`).

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map, Num, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::Serialize;

use super::rules::{Origin, SETTINGS, defaults};
use super::{Config, ConfigError, ConfigWarning, ENV_PREFIX};

/// What errors call the defaults a reader starts from.
const DEFAULTS: &str = "the defaults";
/// What errors call a [`Config`] given to [`Config::validate`].
const BUILT_IN_CODE: &str = "the configuration built in code";

impl Config {
    /// [`Config::extract`] for a host that also reads the `also_known` keys (an adapter's, such
    /// as the Prometheus source's) from the same provider: those are not warned about.
    pub fn extract_with(
        provider: impl Provider,
        also_known: &[&'static str],
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        // Defaults first so a host figment that sets only some keys still extracts.
        Self::extract_from(&Reader::new(&defaults(), provider), also_known)
    }

    /// Extracts from the `section` of a host's own figment (its `[idle_scaler]` table, say),
    /// then the environment variables under `env_prefix` (the host's, such as `MYHOST_SCALER_`;
    /// [`ENV_PREFIX`] for the standalone names). Errors and warnings name the host's variables,
    /// and the file and key a value came from. `also_known` as in [`Config::extract_with`].
    pub fn extract_section(
        figment: &Figment,
        section: &str,
        env_prefix: &str,
        also_known: &[&'static str],
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        refuse_values_figment_panics_on(env_prefix, also_known)?;
        let read = Reader::for_section(&defaults(), figment, section, env_prefix);
        Self::extract_from(&read, also_known)
    }

    /// [`Config::extract_section`], logging the warnings.
    pub fn from_section(
        figment: &Figment,
        section: &str,
        env_prefix: &str,
        also_known: &[&'static str],
    ) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::extract_section(figment, section, env_prefix, also_known)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "configuration adjusted");
        }
        Ok(config)
    }

    fn extract_from(
        read: &Reader,
        also_known: &[&'static str],
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = read.unknown_keys(also_known);
        let (config, adjusted) = Self::read_settings(read, Origin::Source)?;
        warnings.extend(adjusted);
        Ok((config, warnings))
    }
}

/// Typed reads of single keys, each failing with a [`ConfigError`] that names the key, its
/// environment variable, the value as given and what is allowed. The job uses it for its keys;
/// an adapter crate uses it for its own keys in the same figment, so its errors read the same.
#[derive(Debug)]
pub struct Reader {
    fig: Figment,
    /// Prefix of the environment variables the keys are read from.
    prefix: String,
    /// The section of a host's figment the keys live in, for naming file keys.
    section: Option<String>,
}

impl Reader {
    /// `defaults` (the serialized settings struct), then `provider` on top; variables are
    /// named with [`ENV_PREFIX`].
    pub fn new<T: Serialize>(defaults: &T, provider: impl Provider) -> Self {
        Self {
            fig: Figment::from(Named(DEFAULTS, Serialized::defaults(defaults))).merge(provider),
            prefix: ENV_PREFIX.to_owned(),
            section: None,
        }
    }

    /// `defaults`, then the `section` of a host's `figment`, then the environment variables
    /// under `env_prefix` (see [`Config::extract_section`]).
    pub fn for_section<T: Serialize>(
        defaults: &T,
        figment: &Figment,
        section: &str,
        env_prefix: &str,
    ) -> Self {
        let provider = figment.focus(section).merge(Env::prefixed(env_prefix));
        Self {
            fig: Figment::from(Named(DEFAULTS, Serialized::defaults(defaults))).merge(provider),
            prefix: env_prefix.to_owned(),
            section: Some(section.to_owned()),
        }
    }

    /// `config` as the only source, for [`Config::validate`].
    pub(super) fn built(config: &Config) -> Self {
        Self {
            fig: Figment::from(Named(BUILT_IN_CODE, Serialized::defaults(config))),
            prefix: ENV_PREFIX.to_owned(),
            section: None,
        }
    }

    /// The environment variable `key` is read from.
    pub fn env_name(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.to_uppercase())
    }

    /// An integer in `min..=max`, from a number or a string holding one.
    pub fn int<T: TryFrom<i128>>(
        &self,
        key: &'static str,
        min: i128,
        max: i128,
        allowed: &'static str,
    ) -> Result<T, ConfigError> {
        let value = self.find(key)?;
        let parsed = match &value {
            Value::Num(_, n) => integral(n),
            Value::String(_, s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        parsed
            .filter(|v| (min..=max).contains(v))
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| self.refuse(key, &value, allowed))
    }

    /// A string, trimmed; an empty value is the empty string.
    pub fn string(&self, key: &'static str) -> Result<String, ConfigError> {
        let value = self.find(key)?;
        match &value {
            Value::String(_, s) => Ok(s.trim().to_owned()),
            Value::Empty(..) => Ok(String::new()),
            _ => Err(self.refuse(key, &value, "a string")),
        }
    }

    /// The error for a value of `key` that a caller's own rule refused.
    pub fn invalid(&self, key: &'static str, allowed: &'static str) -> ConfigError {
        match self.find(key) {
            Ok(value) => self.refuse(key, &value, allowed),
            Err(e) => e,
        }
    }

    /// Where `value` of `key` came from, from figment's metadata: the variable, the file and
    /// key, the defaults, or the host's own provider by its name.
    pub(super) fn origin(&self, key: &str, value: &Value) -> String {
        let Some(meta) = self.fig.get_metadata(value.tag()) else {
            return "an unknown source".to_owned();
        };
        let file_key = match &self.section {
            Some(section) => format!("{section}.{key}"),
            None => key.to_owned(),
        };
        match &meta.source {
            Some(Source::File(path)) => format!("key {file_key} in {}", path.display()),
            // figment's own name for it drops the prefix: the reader knows it.
            _ if meta.name.contains("environment") => {
                format!("environment variable {}", self.env_name(key))
            }
            _ if [DEFAULTS, BUILT_IN_CODE].contains(&&*meta.name) => meta.name.to_string(),
            _ => format!("key {file_key} of {}", meta.name),
        }
    }

    pub(super) fn refuse(
        &self,
        key: &'static str,
        value: &Value,
        allowed: &'static str,
    ) -> ConfigError {
        ConfigError::Invalid {
            key,
            env: self.env_name(key),
            value: render(value),
            origin: self.origin(key, value),
            allowed,
        }
    }

    /// A warning for every key that is neither the job's nor one of `also_known`.
    fn unknown_keys(&self, also_known: &[&str]) -> Vec<ConfigWarning> {
        let Ok(dict) = self.fig.data() else {
            return Vec::new();
        };
        dict.values()
            .flat_map(|keys| keys.keys())
            .filter(|key| {
                !SETTINGS.iter().any(|s| s.key == key.as_str())
                    && !also_known.contains(&key.as_str())
            })
            .map(|key| {
                ConfigWarning(format!(
                    "unknown configuration key {key:?} ({}) ignored",
                    self.env_name(key)
                ))
            })
            .collect()
    }

    pub(super) fn find(&self, key: &'static str) -> Result<Value, ConfigError> {
        self.fig
            .find_value(key)
            .map_err(|e| ConfigError::Source(one_line(&e.to_string())))
    }
}

/// A source error on one line. The TOML parser renders a snippet over several lines
/// (`at line 3, column 15`, the source line, a caret, the message, ` in <file> TOML file`);
/// startup errors are one line, so it becomes "<head> (key `k`): <message> in <file>".
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default().trim();
    let (mut key, mut message, mut origin) = (None, Vec::new(), None);
    for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((number, source)) = line.split_once(" | ")
            && number.trim().chars().all(|c| c.is_ascii_digit())
        {
            // `key = value`, or a `[table]` header.
            let source = source.trim();
            key = Some(
                source
                    .split_once('=')
                    .map_or(source, |(k, _)| k)
                    .trim()
                    .to_owned(),
            );
        } else if line.starts_with('|') {
            // The caret under the column.
        } else if line.starts_with("in ") {
            origin = Some(line);
        } else {
            message.push(line);
        }
    }
    let mut out = head.to_owned();
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        out.push_str(&format!(" (key `{key}`)"));
    }
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&message.join("; "));
    }
    if let Some(origin) = origin {
        out.push(' ');
        out.push_str(origin);
    }
    out
}

/// figment 0.10 panics on a quoted string with a non-ASCII character before a backslash (its
/// unescaping slices the string at a char index taken as a byte index). Found by the property
/// tests (`tests/config_props.rs`). A typo in a variable must be a startup error naming it,
/// never a panic, so values mixing a quote, a backslash and non-ASCII text are refused before
/// figment sees them (a superset of what panics; none of these settings needs such a value).
pub(super) fn refuse_values_figment_panics_on(
    prefix: &str,
    also_known: &[&'static str],
) -> Result<(), ConfigError> {
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(prefix)) else {
            continue;
        };
        let value = value.to_string_lossy();
        if value.contains('"') && value.contains('\\') && !value.is_ascii() {
            let key = SETTINGS
                .iter()
                .map(|s| s.key)
                .chain(also_known.iter().copied())
                .find(|k| format!("{prefix}{}", k.to_uppercase()) == name)
                .unwrap_or("unknown");
            return Err(ConfigError::Invalid {
                key,
                env: name.to_owned(),
                value: value.into_owned(),
                origin: format!("environment variable {name}"),
                allowed: "a value without a backslash and a quote around non-ASCII text",
            });
        }
    }
    Ok(())
}

pub(super) fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        // Whole numbers exactly: a float would round a large one.
        Value::Num(_, n) => match (integral(n), n.to_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => f.to_string(),
            (None, None) => "(a number)".into(),
        },
        Value::Empty(..) => "(empty)".into(),
        Value::Dict(..) => "(a table)".into(),
        Value::Array(..) => "(an array)".into(),
    }
}

pub(super) fn integral(n: &Num) -> Option<i128> {
    let n = *n;
    n.to_i128()
        .or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
        .or_else(|| {
            let f = n.to_f64()?;
            #[allow(clippy::cast_possible_truncation)] // only whole floats within i64 are taken
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i128)
        })
}

/// A provider under a name errors use for where a value came from.
struct Named<P>(&'static str, P);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.0)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.1.data()
    }
}
