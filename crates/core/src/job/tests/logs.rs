//! Capturing the tracing events a test's thread emits. One global subscriber, installed once,
//! writes each event into the buffer of the thread that emitted it, if that thread is
//! capturing: with a single dispatcher that wants every event, no other test thread's
//! subscriber can leave a callsite's cached interest or the global level filter without it
//! (scoped subscribers per test raced on both, and dropped events now and then).

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once, PoisonError};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

thread_local! {
    /// This thread's buffer and the least severe level it keeps, while it captures.
    static CAPTURE: RefCell<Option<(Buffer, Level)>> = const { RefCell::new(None) };
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

/// Where an event goes: its thread's buffer, or nowhere.
struct Sink(Option<Buffer>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(Buffer(b)) = &self.0 {
            b.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct PerThread;

impl<'a> MakeWriter<'a> for PerThread {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        Sink(None)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Sink {
        CAPTURE.with(|c| {
            Sink(
                c.borrow()
                    .as_ref()
                    .filter(|(_, level)| meta.level() <= level)
                    .map(|(buffer, _)| buffer.clone()),
            )
        })
    }
}

/// Runs `f`, returning what it returned and the events this thread emitted meanwhile at
/// `level` or more severe, formatted without colours.
pub(super) fn captured<T>(level: Level, f: impl FnOnce() -> T) -> (T, String) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(PerThread)
            .finish();
        // Nothing else in this test binary installs a global subscriber.
        tracing::subscriber::set_global_default(subscriber).expect("the one global subscriber");
    });
    let buffer = Buffer::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some((buffer.clone(), level)));
    let out = f();
    CAPTURE.with(|c| *c.borrow_mut() = None);
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    (out, text)
}
