//! A crash of the waking process between two port calls: the scaler the `Job` wakes through
//! hangs for good at an armed point (before or after `get_scale` or `set_replicas`), as the
//! calls of a process that died there never complete. The point is taken by the first call
//! that meets it; the simulation then drains that listener and builds a new `Job` and `Waker`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use idle_scaler_core::{Result, Scale, Scaler, Target};

/// Where the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    BeforeGetScale,
    AfterGetScale,
    BeforeSetReplicas,
    /// The write took effect; its answer is never read.
    AfterSetReplicas,
}

pub const POINTS: [Point; 4] = [
    Point::BeforeGetScale,
    Point::AfterGetScale,
    Point::BeforeSetReplicas,
    Point::AfterSetReplicas,
];

/// The scaler with an armable crash point.
pub struct CrashScaler {
    inner: Arc<dyn Scaler>,
    armed: Mutex<Option<Point>>,
    /// Calls that hung (crashes taken).
    hung: AtomicU64,
}

impl CrashScaler {
    pub fn new(inner: Arc<dyn Scaler>) -> Self {
        Self {
            inner,
            armed: Mutex::new(None),
            hung: AtomicU64::new(0),
        }
    }

    pub fn arm(&self, point: Option<Point>) {
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = point;
    }

    pub fn hung(&self) -> u64 {
        self.hung.load(Ordering::SeqCst)
    }

    /// Dies here if armed here: never returns.
    async fn at(&self, point: Point) {
        let taken = {
            let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
            let taken = *armed == Some(point);
            if taken {
                *armed = None;
            }
            taken
        };
        if taken {
            self.hung.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Scaler for CrashScaler {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        self.at(Point::BeforeGetScale).await;
        let scale = self.inner.get_scale(target).await;
        self.at(Point::AfterGetScale).await;
        scale
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        self.at(Point::BeforeSetReplicas).await;
        let set = self
            .inner
            .set_replicas(target, replicas, resource_version)
            .await;
        self.at(Point::AfterSetReplicas).await;
        set
    }
}
