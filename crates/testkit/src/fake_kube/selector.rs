//! Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field
//! selectors (`path=value`, `path!=value` on any dotted field, such as `status.podIP`), as
//! list and watch requests send them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// A parsed label selector; the empty one selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Labels(Vec<Term>);

/// Splits on the commas outside `( )`.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0_i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set(values: &str) -> Result<Vec<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, found {values:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl Labels {
    /// Parses the `labelSelector` query value (already percent-decoded).
    pub fn parse(s: &str) -> Result<Self, String> {
        terms(s)
            .into_iter()
            .map(|t| {
                if let Some((k, v)) = t.split_once("!=") {
                    return Ok(Term::NotIn(k.trim().to_owned(), vec![v.trim().to_owned()]));
                }
                if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                    return Ok(Term::In(k.trim().to_owned(), vec![v.trim().to_owned()]));
                }
                if let Some((k, v)) = t.split_once(" notin ") {
                    return Ok(Term::NotIn(k.trim().to_owned(), set(v)?));
                }
                if let Some((k, v)) = t.split_once(" in ") {
                    return Ok(Term::In(k.trim().to_owned(), set(v)?));
                }
                if let Some(k) = t.strip_prefix('!') {
                    return Ok(Term::Absent(k.trim().to_owned()));
                }
                if t.contains([' ', '(', ')']) {
                    return Err(format!("unable to parse requirement: {t:?}"));
                }
                Ok(Term::Exists(t.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether an object's `metadata.labels` satisfy every term.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0.iter().all(|t| match t {
            Term::In(k, vs) => labels[k]
                .as_str()
                .is_some_and(|v| vs.iter().any(|x| x == v)),
            // As in Kubernetes: `notin` and `!=` also select objects without the label.
            Term::NotIn(k, vs) => labels[k].as_str().is_none_or(|v| vs.iter().all(|x| x != v)),
            Term::Exists(k) => labels.get(k).is_some(),
            Term::Absent(k) => labels.get(k).is_none(),
        })
    }
}

/// A parsed field selector: `(dotted path, value, equal)` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Fields(Vec<(String, String, bool)>);

impl Fields {
    /// Parses the `fieldSelector` query value (already percent-decoded).
    pub fn parse(s: &str) -> Result<Self, String> {
        terms(s)
            .into_iter()
            .map(|t| {
                let (path, value, equal) = if let Some((k, v)) = t.split_once("!=") {
                    (k, v, false)
                } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                    (k, v, true)
                } else {
                    return Err(format!("invalid field selector term {t:?}"));
                };
                Ok((path.trim().to_owned(), value.trim().to_owned(), equal))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether every term holds; a missing field compares as the empty string, as the
    /// apiserver's field sets do.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, value, equal)| {
            let field = path.split('.').fold(object, |v, k| &v[k]);
            let field = match field {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (field == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests;
