//! Accepting connections for the daemon's servers, telling a listener that
//! died (EINVAL, EBADF, ...) from a transient accept error (a reset, or out of
//! file descriptors), so a dead listener stops the daemon instead of leaving
//! it running with no way in.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A listener whose fatal accept error is reported once to its [`Failed`].
pub struct Accept {
    listener: TcpListener,
    failed: Option<oneshot::Sender<io::Error>>,
}

/// Resolves with the error that killed the listener; never resolves while it lives.
pub struct Failed(oneshot::Receiver<io::Error>);

impl Failed {
    pub async fn wait(self) -> io::Error {
        match self.0.await {
            Ok(e) => e,
            // The listener was dropped without failing (the server stopped).
            Err(_) => std::future::pending().await,
        }
    }
}

pub fn watch(listener: TcpListener) -> (Accept, Failed) {
    let (tx, rx) = oneshot::channel();
    (Accept { listener, failed: Some(tx) }, Failed(rx))
}

/// Errors after which the listener still works: the peer gave up, or the
/// process is out of descriptors or memory for a moment.
fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | BrokenPipe | Interrupted | WouldBlock | TimedOut)
        || matches!(e.raw_os_error(), Some(code) if [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&code))
}

impl Accept {
    /// The next connection. A transient error is retried after a short pause;
    /// a fatal one is reported to [`Failed`] and this never returns.
    async fn next(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(conn) => return conn,
                Err(e) if transient(&e) => {
                    tracing::debug!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    if let Some(tx) = self.failed.take() {
                        let _ = tx.send(e);
                    }
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// The connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<TcpStream>> + Send + 'static {
        futures_util::stream::unfold(self, |mut accept| async move {
            let (conn, _) = accept.next().await;
            Some((Ok(conn), accept))
        })
    }
}

impl axum::serve::Listener for Accept {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        self.next().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}
