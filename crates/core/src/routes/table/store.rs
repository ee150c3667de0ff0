//! The compact forms the table keeps: strings shared and the usual single hostname, port
//! and route of a host stored without an allocation of their own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A kept rule: strings shared (hostnames with the host maps, namespaces and paths
/// interned, Services with the port counts), so 100,000 routes stay small.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) hostnames: Hosts,
    pub(super) path: Arc<str>,
    pub(super) exact: bool,
    pub(super) rewrites: bool,
    pub(super) default_backend: bool,
    pub(super) backends: Box<[Backend]>,
}

#[derive(Debug)]
pub(super) struct Backend {
    pub(super) namespace: Arc<str>,
    pub(super) service: Arc<str>,
    pub(super) port: Option<i32>,
}

#[derive(Debug)]
pub(super) struct Stored {
    pub(super) created: i64,
    /// The list (of its kind) that last wrote it.
    pub(super) generation: u32,
    pub(super) rules: Box<[Rule]>,
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

/// How many rules name each port of a Service, without an allocation for the usual one.
#[derive(Debug)]
pub(super) enum PortCounts {
    One(i32, u32),
    Many(Vec<(i32, u32)>),
}

impl PortCounts {
    pub(super) fn add(&mut self, port: i32) {
        match self {
            Self::One(p, n) if *p == port => *n += 1,
            Self::One(p, n) => *self = Self::Many(vec![(*p, *n), (port, 1)]),
            Self::Many(v) => match v.iter_mut().find(|(p, _)| *p == port) {
                Some((_, n)) => *n += 1,
                None => v.push((port, 1)),
            },
        }
    }

    /// One rule less names `port`; whether no port is left.
    pub(super) fn remove(&mut self, port: i32) -> bool {
        match self {
            Self::One(p, n) if *p == port => {
                *n -= 1;
                *n == 0
            }
            Self::One(..) => false,
            Self::Many(v) => {
                if let Some((_, n)) = v.iter_mut().find(|(p, _)| *p == port) {
                    *n -= 1;
                }
                v.retain(|(_, n)| *n > 0);
                v.is_empty()
            }
        }
    }

    pub(super) fn ports(&self) -> Vec<i32> {
        match self {
            Self::One(p, _) => vec![*p],
            Self::Many(v) => v.iter().map(|(p, _)| *p).collect(),
        }
    }
}

/// The routes of one host key: nearly always one.
#[derive(Debug)]
pub(super) enum Ids {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
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
            Self::One(k) => *self = Self::Many(vec![k.clone(), key.clone()]),
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
