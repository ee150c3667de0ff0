//! The job's keys as data: each key's rule, default and what an error says is allowed. The
//! loaders read every key through [`SETTINGS`], and [`Config::validate`] holds a configuration
//! built in code to the same table, so both refuse the same values in the same words.

use figment::Figment;
use figment::value::{Dict, Value};

use super::clusters::{ALLOWED_DEFAULT, ALLOWED_ENTRIES};
use super::load::Reader;
use super::{Config, ConfigError, ConfigWarning, IDLE_MINUTES_FLOOR, IDLE_MINUTES_MAX};

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// An integer from `min` to `max`, from a number or a string holding one.
    Int {
        /// The least value allowed.
        min: i64,
        /// The greatest value allowed.
        max: i64,
    },
    /// An integer from `floor` to `max`; from a source, one from 0 to below `floor` is raised
    /// to `floor` with a warning (a configuration built in code is refused instead).
    Floored {
        /// The least value kept.
        floor: i64,
        /// The greatest value allowed.
        max: i64,
    },
    /// A boolean: `true/false`, `1/0`, `yes/no` or `on/off`, in any case.
    Bool,
    /// One of these words, in any case.
    OneOf(&'static [&'static str]),
    /// Namespaces (DNS-1123 labels): a comma-separated list or an array; `none` for none.
    Namespaces,
    /// The named clusters: the environment's entry list or a table (see `ClusterConfig`).
    Clusters,
    /// An IANA time zone name (`UTC`, `Europe/Berlin`), as written.
    TimeZone,
}

/// One key of the job configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The key, as in a TOML file; its variable is the prefix and the key in capitals.
    pub key: &'static str,
    /// What it accepts.
    pub rule: Rule,
    /// The default, written as in the environment.
    pub default: &'static str,
    /// What an error says is allowed.
    pub allowed: &'static str,
}

impl Setting {
    /// The standalone environment variable of the key.
    pub fn env(&self) -> String {
        super::env_name(self.key)
    }
}

const BOOLEAN: &str = "a boolean: true/false, 1/0, yes/no or on/off";

/// Every key the job reads, in the order they are checked (the first bad one is reported).
pub const SETTINGS: [Setting; 21] = [
    Setting {
        key: "enabled",
        rule: Rule::Bool,
        default: "false",
        allowed: BOOLEAN,
    },
    Setting {
        key: "idle_minutes",
        rule: Rule::Floored {
            floor: IDLE_MINUTES_FLOOR as i64,
            max: IDLE_MINUTES_MAX as i64,
        },
        default: "30",
        allowed: "a whole number of minutes from 5 to 525600 (one year); the loaders raise \
                  0 to 4 to 5",
    },
    Setting {
        key: "interval_seconds",
        rule: Rule::Int {
            min: 10,
            max: 86_400,
        },
        default: "120",
        allowed: "an integer from 10 to 86400 (seconds)",
    },
    Setting {
        key: "max_per_tick",
        rule: Rule::Int {
            min: 1,
            max: 100_000,
        },
        default: "50",
        allowed: "an integer from 1 to 100000",
    },
    Setting {
        key: "concurrency",
        rule: Rule::Int { min: 1, max: 64 },
        default: "4",
        allowed: "an integer from 1 to 64",
    },
    Setting {
        key: "dry_run",
        rule: Rule::Bool,
        default: "false",
        allowed: BOOLEAN,
    },
    Setting {
        key: "default_wake_replicas",
        rule: Rule::Int {
            min: 1,
            max: 10_000,
        },
        default: "1",
        allowed: "an integer from 1 to 10000",
    },
    Setting {
        key: "protected_namespaces",
        rule: Rule::Namespaces,
        default: "kube-system,kube-public,kube-node-lease",
        allowed: "a comma-separated list of namespaces (DNS-1123 labels), or none to protect none",
    },
    Setting {
        key: "max_consecutive_failures",
        rule: Rule::Int {
            min: 1,
            max: 10_000,
        },
        default: "5",
        allowed: "an integer from 1 to 10000",
    },
    // One sleep makes up to four requests after its intent is written; together they must end
    // well inside the stale-intent age (5 min), or a live transition could be taken for a
    // crash leftover and settled under it.
    Setting {
        key: "request_timeout_seconds",
        rule: Rule::Int { min: 1, max: 59 },
        default: "10",
        allowed: "an integer from 1 to 59 (seconds): 4 requests of one sleep, plus a minute of \
                  database time, must end inside the 300 s stale-intent age",
    },
    Setting {
        key: "reconcile_minutes",
        rule: Rule::Int { min: 1, max: 1440 },
        default: "10",
        allowed: "an integer from 1 to 1440 (minutes)",
    },
    Setting {
        key: "flap_limit",
        rule: Rule::Int { min: 1, max: 100 },
        default: "3",
        allowed: "an integer from 1 to 100",
    },
    Setting {
        key: "activity_source",
        rule: Rule::OneOf(&["none", "prometheus"]),
        default: "none",
        allowed: "none or prometheus",
    },
    Setting {
        key: "activity_unknown",
        rule: Rule::OneOf(&["keep_awake", "sleep"]),
        default: "keep_awake",
        allowed: "keep_awake or sleep",
    },
    Setting {
        key: "default_cluster",
        rule: Rule::Bool,
        default: "true",
        allowed: BOOLEAN,
    },
    // A table from a file is refused with `clusters::ALLOWED_TABLE`, which speaks of tables.
    Setting {
        key: "clusters",
        rule: Rule::Clusters,
        default: "none",
        allowed: ALLOWED_ENTRIES,
    },
    Setting {
        key: "parking",
        rule: Rule::OneOf(&["off", "endpointslices"]),
        default: "off",
        allowed: "off or endpointslices",
    },
    Setting {
        key: "policy",
        rule: Rule::OneOf(&["fixed", "adaptive"]),
        default: "fixed",
        allowed: "fixed or adaptive",
    },
    Setting {
        key: "prewarm_minutes",
        rule: Rule::Int { min: 0, max: 60 },
        default: "5",
        allowed: "an integer from 0 to 60 (minutes; 0: never pre-warm)",
    },
    Setting {
        key: "max_keep_minutes",
        rule: Rule::Int { min: 5, max: 1440 },
        default: "120",
        allowed: "an integer from 5 to 1440 (minutes)",
    },
    Setting {
        key: "timezone",
        rule: Rule::TimeZone,
        default: "UTC",
        allowed: "an IANA time zone name such as UTC or Europe/Berlin",
    },
];

/// Who wrote the values being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A file, the environment or a host's provider.
    Source,
    /// A [`Config`] built in code: nothing is adjusted, and an empty namespace list is the
    /// typed form of `none`.
    Code,
}

/// The defaults as a provider's data: every key's default text.
pub(super) fn defaults() -> Dict {
    SETTINGS
        .iter()
        .map(|s| (s.key.to_owned(), Value::from(s.default)))
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        let read = Reader::new(&defaults(), Figment::new());
        match Config::read_settings(&read, Origin::Source) {
            Ok((config, _)) => config,
            // Every test that builds a Config runs this: a wrong default cannot ship.
            Err(e) => panic!("a default in the configuration table breaks its rule: {e}"),
        }
    }
}

impl Config {
    /// Checks a configuration built in code against the rules the loaders enforce (the same
    /// table, the same words), so a library caller cannot build a job the environment would
    /// have refused. A short `idle_minutes` is refused here, not raised.
    ///
    /// # Errors
    /// The first value outside its rule, naming the key, its variable and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Self::read_settings(&Reader::built(self), Origin::Code).map(drop)
    }

    /// Reads every key of [`SETTINGS`] and the rules between keys; the warnings are the
    /// values adjusted.
    pub(super) fn read_settings(
        read: &Reader,
        origin: Origin,
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut values = Dict::new();
        for setting in &SETTINGS {
            let value = read.setting(setting, origin, &mut warnings)?;
            values.insert(setting.key.to_owned(), value);
        }
        // The values passed their rules, so only a key missing from the table fails here.
        let config: Self = Value::from(values)
            .deserialize()
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        if config.served_clusters().is_empty() {
            return Err(read.invalid("default_cluster", ALLOWED_DEFAULT));
        }
        Ok((config, warnings))
    }
}

impl Reader {
    /// The value of `setting` once it passed its rule, in the form the field deserializes from.
    fn setting(
        &self,
        setting: &Setting,
        origin: Origin,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<Value, ConfigError> {
        let Setting { key, allowed, .. } = *setting;
        Ok(match setting.rule {
            Rule::Int { min, max } => self
                .int::<i64>(key, min.into(), max.into(), allowed)?
                .into(),
            Rule::Floored { floor, max } => {
                let least = if origin == Origin::Code { floor } else { 0 };
                let given: i64 = self.int(key, least.into(), max.into(), allowed)?;
                if given < floor {
                    warnings.push(ConfigWarning(format!(
                        "{} = {given} is below the floor; using {floor}",
                        self.env_name(key)
                    )));
                }
                given.max(floor).into()
            }
            Rule::Bool => self.boolean(key, allowed)?.into(),
            Rule::OneOf(words) => self.one_of(key, words, allowed)?.into(),
            Rule::Namespaces => self.namespaces(key, origin, allowed)?.into(),
            Rule::Clusters => Value::serialize(self.clusters(key)?)
                .map_err(|e| ConfigError::Source(e.to_string()))?,
            Rule::TimeZone => self.time_zone(key, allowed)?.into(),
        })
    }

    fn boolean(&self, key: &'static str, allowed: &'static str) -> Result<bool, ConfigError> {
        let value = self.find(key)?;
        let parsed = match &value {
            Value::Bool(_, b) => Some(*b),
            Value::Num(_, n) => match super::load::integral(n) {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" | "" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.ok_or_else(|| self.refuse(key, &value, allowed))
    }

    /// The zone's canonical name (its case corrected), so the field always parses.
    fn time_zone(&self, key: &'static str, allowed: &'static str) -> Result<String, ConfigError> {
        let value = self.find(key)?;
        value
            .as_str()
            .and_then(|s| chrono_tz::Tz::from_str_insensitive(s.trim()).ok())
            .map(|tz| tz.name().to_owned())
            .ok_or_else(|| self.refuse(key, &value, allowed))
    }

    fn one_of(
        &self,
        key: &'static str,
        words: &[&'static str],
        allowed: &'static str,
    ) -> Result<&'static str, ConfigError> {
        let value = self.find(key)?;
        let given = value.as_str().map(|s| s.trim().to_ascii_lowercase());
        words
            .iter()
            .find(|word| given.as_deref() == Some(**word))
            .copied()
            .ok_or_else(|| self.refuse(key, &value, allowed))
    }

    fn namespaces(
        &self,
        key: &'static str,
        origin: Origin,
        allowed: &'static str,
    ) -> Result<Vec<String>, ConfigError> {
        let value = self.find(key)?;
        // An empty list is most likely a templating slip that would expose kube-system: only
        // the explicit `none` turns the protection off (built in code, `none` is the empty Vec).
        let none = match &value {
            Value::String(_, s) => s.trim().eq_ignore_ascii_case("none"),
            Value::Array(_, items) => origin == Origin::Code && items.is_empty(),
            _ => false,
        };
        if none {
            return Ok(Vec::new());
        }
        let items: Vec<String> = match &value {
            Value::String(_, s) => s
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            Value::Array(_, vs) => vs
                .iter()
                .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                .collect::<Option<_>>()
                .ok_or_else(|| self.refuse(key, &value, allowed))?,
            _ => return Err(self.refuse(key, &value, allowed)),
        };
        if items.is_empty()
            || items
                .iter()
                .any(|ns| crate::Target::parse(&format!("k8s:{ns}/x")).is_err())
        {
            return Err(self.refuse(key, &value, allowed));
        }
        Ok(items)
    }
}
