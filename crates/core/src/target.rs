//! `provider_id` parsing: `k8s:<namespace>/<deployment>`.

use serde::Serialize;

const SCHEME: &str = "k8s:";

/// A Kubernetes Deployment this scaler may act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    /// Namespace (a DNS-1123 label).
    pub namespace: String,
    /// Deployment name (a DNS-1123 subdomain).
    pub name: String,
}

/// Why a `provider_id` names no target of this scaler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Another provider's id: not ours, skipped quietly.
    #[error("foreign provider id")]
    Foreign,
    /// Our scheme but not a valid `<namespace>/<deployment>`.
    #[error("malformed provider id: {0}")]
    Malformed(&'static str),
}

impl Target {
    /// Parses `k8s:<namespace>/<deployment>`.
    pub fn parse(provider_id: &str) -> Result<Self, TargetError> {
        let rest = provider_id
            .strip_prefix(SCHEME)
            .ok_or(TargetError::Foreign)?;
        let (namespace, name) = rest.split_once('/').ok_or(TargetError::Malformed(
            "expected k8s:<namespace>/<deployment>",
        ))?;
        if !is_dns1123_label(namespace) {
            return Err(TargetError::Malformed("namespace is not a DNS-1123 label"));
        }
        if !is_dns1123_subdomain(name) {
            return Err(TargetError::Malformed(
                "deployment name is not a DNS-1123 subdomain",
            ));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The `provider_id` naming this target.
    pub fn provider_id(&self) -> String {
        format!("{SCHEME}{}/{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// RFC 1123 label as Kubernetes checks it: 1-63 of `[a-z0-9-]`, alphanumeric at both ends.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: at most 253 characters of dot-separated labels.
fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_valid_ids() {
        let cases = [
            ("k8s:apps/web", "apps", "web"),
            ("k8s:a/b", "a", "b"),
            ("k8s:team-1/api.v2", "team-1", "api.v2"),
            ("k8s:0ns/9-x-9", "0ns", "9-x-9"),
        ];
        for (id, ns, name) in cases {
            let t = Target::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!((t.namespace.as_str(), t.name.as_str()), (ns, name), "{id}");
            assert_eq!(t.provider_id(), id);
        }
    }

    #[test]
    fn foreign_ids_are_distinct_from_malformed() {
        for id in [
            "",
            "fly:app",
            "K8S:apps/web",
            "k8s",
            "docker:web",
            "k8s-apps/web",
        ] {
            assert_eq!(Target::parse(id), Err(TargetError::Foreign), "{id:?}");
        }
    }

    #[test]
    fn rejects_malformed_ids() {
        let long_label = "a".repeat(64);
        let long_name = format!("{}.{}", "a".repeat(63), "b".repeat(63)).repeat(3);
        let cases: Vec<String> = vec![
            "k8s:".into(),
            "k8s:apps".into(),
            "k8s:/web".into(),
            "k8s:apps/".into(),
            "k8s:Apps/web".into(),
            "k8s:apps/Web".into(),
            "k8s:-apps/web".into(),
            "k8s:apps-/web".into(),
            "k8s:apps/web-".into(),
            "k8s:a.b/web".into(),
            "k8s:apps/web/extra".into(),
            "k8s:apps/we_b".into(),
            "k8s:apps/web..x".into(),
            "k8s:apps/.web".into(),
            "k8s:ap ps/web".into(),
            format!("k8s:{long_label}/web"),
            format!("k8s:apps/{long_name}"),
            "k8s:äpps/web".into(),
        ];
        for id in cases {
            assert!(
                matches!(Target::parse(&id), Err(TargetError::Malformed(_))),
                "{id:?}"
            );
        }
    }

    #[test]
    fn accepts_longest_valid_parts() {
        let ns = "a".repeat(63);
        let name = format!(
            "{}.{}.{}.{}",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(61)
        );
        assert_eq!(name.len(), 253);
        assert!(Target::parse(&format!("k8s:{ns}/{name}")).is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = Target::parse(&s);
        }

        #[test]
        fn never_panics_with_scheme(s in "k8s:[a-z0-9./-]{0,300}") {
            if let Ok(t) = Target::parse(&s) {
                prop_assert_eq!(t.provider_id(), s);
            }
        }
    }
}
