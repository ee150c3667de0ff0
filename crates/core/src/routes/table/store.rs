//! The compact forms the table keeps: strings shared and the usual single hostname,
//! backend, port and route of a host stored without an allocation of their own (and in 16
//! bytes where a hash map holds them: a map keeps about a third more slots than entries).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A kept rule: strings shared (hostnames with the host maps, namespaces and paths
/// interned, Services with the port counts), so 100,000 routes stay small. 72 bytes: with
/// the allocator's 8 a usual route's `Stored` fits a 96-byte chunk.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) hostnames: Hosts,
    pub(super) path: Arc<str>,
    pub(super) exact: bool,
    pub(super) rewrites: bool,
    pub(super) default_backend: bool,
    pub(super) backends: Backends,
}

#[derive(Debug)]
pub(super) struct Backend {
    pub(super) namespace: Arc<str>,
    pub(super) service: Arc<str>,
    pub(super) port: Option<i32>,
    /// Shared with the name counts.
    pub(super) port_name: Option<Arc<str>>,
}

/// A route as kept, boxed in its map (a map keeps about a third more slots than entries, so
/// a slot holds a pointer, not the usual single rule).
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) created: i64,
    /// The list (of its kind) that last wrote it.
    pub(super) generation: u32,
    pub(super) rules: Rules,
}

/// A rule's backends without an allocation of their own for the usual one: a single Service
/// in the route's own namespace by port number (or none), which does not repeat the namespace
/// (a weighted split, a cross-namespace backend or a port by name keeps every backend whole).
#[derive(Debug)]
pub(super) enum Backends {
    Local {
        service: Arc<str>,
        port: Option<i32>,
    },
    Many(Box<[Backend]>),
}

/// A kept backend as a lookup reads it: namespace, Service, port, port name.
pub(super) type BackendView<'a> = (&'a str, &'a Arc<str>, Option<i32>, Option<&'a Arc<str>>);

impl Backends {
    /// `v`, the backends of a rule of a route in `route_ns`.
    pub(super) fn new(mut v: Vec<Backend>, route_ns: &str) -> Self {
        match v.pop() {
            Some(b) if v.is_empty() && *b.namespace == *route_ns && b.port_name.is_none() => {
                Self::Local {
                    service: b.service,
                    port: b.port,
                }
            }
            Some(b) => {
                v.push(b);
                Self::Many(v.into_boxed_slice())
            }
            None => Self::Many(Box::default()),
        }
    }

    /// Every backend, `route_ns` being a local one's namespace.
    pub(super) fn iter<'a>(&'a self, route_ns: &'a str) -> impl Iterator<Item = BackendView<'a>> {
        let (local, many) = match self {
            Self::Local { service, port } => (Some((route_ns, service, *port, None)), &[][..]),
            Self::Many(v) => (None, &v[..]),
        };
        local.into_iter().chain(
            many.iter()
                .map(|b| (&*b.namespace, &b.service, b.port, b.port_name.as_ref())),
        )
    }
}

/// A route's rules without an allocation of their own for the usual one.
#[derive(Debug)]
pub(super) enum Rules {
    One(Rule),
    Many(Box<[Rule]>),
}

impl Rules {
    pub(super) fn new(mut v: Vec<Rule>) -> Self {
        match v.pop() {
            Some(r) if v.is_empty() => Self::One(r),
            Some(r) => {
                v.push(r);
                Self::Many(v.into_boxed_slice())
            }
            None => Self::Many(Box::default()),
        }
    }

    pub(super) fn as_slice(&self) -> &[Rule] {
        match self {
            Self::One(r) => std::slice::from_ref(r),
            Self::Many(v) => v,
        }
    }
}

/// The namespace of a route's key `namespace/name` (a namespace has no `/`).
pub(super) fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

/// A rule's hostnames without an allocation of their own for the usual one.
#[derive(Debug)]
pub(super) enum Hosts {
    Any,
    One(Arc<str>),
    Many(Box<[Arc<str>]>),
}

impl Hosts {
    pub(super) fn new(mut v: Vec<Arc<str>>) -> Self {
        match v.len() {
            0 => Self::Any,
            1 => Self::One(v.remove(0)),
            _ => Self::Many(v.into_boxed_slice()),
        }
    }

    pub(super) fn as_slice(&self) -> &[Arc<str>] {
        match self {
            Self::Any => &[],
            Self::One(h) => std::slice::from_ref(h),
            Self::Many(v) => v,
        }
    }
}

/// How many rules name each port of a Service (`P`: its number, or its name), without an
/// allocation for the usual one. `Many` is boxed (a `Vec` would make every entry by number
/// 24 bytes, not 16): several ports are rare.
#[derive(Debug)]
pub(super) enum PortCounts<P> {
    One(P, u32),
    Many(Box<[(P, u32)]>),
}

impl<P: PartialEq + Clone> PortCounts<P> {
    /// One rule more names `port`; the port as kept (a name shared with the count's).
    pub(super) fn add(&mut self, port: P) -> P {
        match self {
            Self::One(p, n) if *p == port => {
                *n += 1;
                p.clone()
            }
            Self::One(p, n) => {
                *self = Self::Many(Box::new([(p.clone(), *n), (port.clone(), 1)]));
                port
            }
            Self::Many(v) => match v.iter_mut().find(|(p, _)| *p == port) {
                Some((p, n)) => {
                    *n += 1;
                    p.clone()
                }
                None => {
                    let mut grown = std::mem::take(v).into_vec();
                    grown.push((port.clone(), 1));
                    *v = grown.into_boxed_slice();
                    port
                }
            },
        }
    }

    /// One rule less names `port`; whether no port is left.
    pub(super) fn remove(&mut self, port: &P) -> bool {
        match self {
            Self::One(p, n) if p == port => {
                *n -= 1;
                *n == 0
            }
            Self::One(..) => false,
            Self::Many(v) => {
                if let Some((_, n)) = v.iter_mut().find(|(p, _)| p == port) {
                    *n -= 1;
                }
                if v.iter().any(|(_, n)| *n == 0) {
                    let mut kept = std::mem::take(v).into_vec();
                    kept.retain(|(_, n)| *n > 0);
                    *v = kept.into_boxed_slice();
                }
                v.is_empty()
            }
        }
    }

    pub(super) fn ports(&self) -> Vec<P> {
        match self {
            Self::One(p, _) => vec![p.clone()],
            Self::Many(v) => v.iter().map(|(p, _)| p.clone()).collect(),
        }
    }
}

/// namespace -> Service -> (port, how many rules name it).
pub(super) type PortMap<P> = HashMap<Arc<str>, HashMap<Arc<str>, PortCounts<P>>>;

/// Counts one rule more naming `port` of `namespace/service`; the Service and the port as
/// kept, shared with the counts.
pub(super) fn count<P: PartialEq + Clone>(
    map: &mut PortMap<P>,
    namespace: &Arc<str>,
    service: &str,
    port: P,
) -> (Arc<str>, P) {
    let by_service = map.entry(namespace.clone()).or_default();
    let s = by_service
        .get_key_value(service)
        .map_or_else(|| Arc::from(service), |(s, _)| s.clone());
    let kept = match by_service.entry(s.clone()) {
        Entry::Occupied(mut e) => e.get_mut().add(port),
        Entry::Vacant(e) => {
            e.insert(PortCounts::One(port.clone(), 1));
            port
        }
    };
    (s, kept)
}

/// Counts one rule less naming `port` of `namespace/service`, dropping what is left empty.
pub(super) fn uncount<P: PartialEq + Clone>(
    map: &mut PortMap<P>,
    namespace: &str,
    service: &str,
    port: &P,
) {
    let Some(by_service) = map.get_mut(namespace) else {
        return;
    };
    if by_service.get_mut(service).is_some_and(|c| c.remove(port)) {
        by_service.remove(service);
    }
    if by_service.is_empty() {
        map.remove(namespace);
    }
}

/// The routes of one host key: nearly always one. `Many` is boxed so that an entry is 16
/// bytes, not 24.
#[derive(Debug)]
pub(super) enum Ids {
    One(Arc<str>),
    #[allow(clippy::box_collection)] // a bare `Vec` would make the usual `One` 24 bytes
    Many(Box<Vec<Arc<str>>>),
}

impl Ids {
    pub(super) fn iter(&self) -> std::slice::Iter<'_, Arc<str>> {
        match self {
            Self::One(k) => std::slice::from_ref(k).iter(),
            Self::Many(v) => v.iter(),
        }
    }

    pub(super) fn add(&mut self, key: &Arc<str>) {
        if self.iter().any(|k| k == key) {
            return;
        }
        match self {
            Self::One(k) => *self = Self::Many(Box::new(vec![k.clone(), key.clone()])),
            Self::Many(v) => v.push(key.clone()),
        }
    }

    /// Removes `key`; whether none is left.
    pub(super) fn remove(&mut self, key: &str) -> bool {
        match self {
            Self::One(k) => **k == *key,
            Self::Many(v) => {
                v.retain(|k| **k != *key);
                v.is_empty()
            }
        }
    }
}

pub(super) fn intern(strings: &mut HashSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(a) = strings.get(s) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(s);
    strings.insert(a.clone());
    a
}

/// The key of `host` in `map` (shared with the rule that names it), added with `key`.
pub(super) fn register(map: &mut HashMap<Arc<str>, Ids>, host: &str, key: &Arc<str>) -> Arc<str> {
    let shared = map.get_key_value(host).map(|(h, _)| h.clone());
    if let Some(h) = shared {
        if let Some(ids) = map.get_mut(host) {
            ids.add(key);
        }
        return h;
    }
    let h: Arc<str> = Arc::from(host);
    map.insert(h.clone(), Ids::One(key.clone()));
    h
}
