//! Serving a stand-in's router on loopback in the background, and stopping it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

/// Binds `addr` (`127.0.0.1:0` for a free port); the URL is `http://<bound address>/`.
pub async fn listen(addr: SocketAddr) -> std::io::Result<(TcpListener, Url)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let url = Url::parse(&format!("http://{local}/")).expect("socket address forms a URL");
    Ok((listener, url))
}

/// A router being served until [`Served::shutdown`].
pub struct Served {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Served {
    /// Serves `app` on `listener` in a background task; `name` names it in logs.
    pub fn spawn(listener: TcpListener, app: Router, name: &'static str) -> Served {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "{name} stopped");
            }
        });
        Served {
            stop: Some(stop),
            task,
        }
    }

    /// Stops taking connections and waits briefly for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Idle keep-alive connections may hold a graceful stop; don't wait on them forever.
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}
