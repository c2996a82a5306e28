//! Captures everything `tracing` emits (TRACE level, all targets) into a shared buffer, so
//! tests can assert on what would reach the logs: that secrets never do, and that the
//! expected lines do (which proves the capture is real).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

pub struct CaptureWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter {
            buffer: self.buffer.clone(),
        }
    }
}

impl LogCapture {
    /// A TRACE-level subscriber writing here, as the thread's default until the guard drops.
    /// Use it with a current-thread runtime so every task logs on this thread.
    pub fn install(&self) -> DefaultGuard {
        tracing::subscriber::set_default(self.subscriber())
    }

    /// A TRACE-level subscriber writing here (JSON lines, like the Lambda functions log,
    /// with every span's fields, so a secret carried in a span would show too).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(self.clone())
            .with_ansi(false)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .finish()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}
