//! A TLS terminator in front of a fixture (or any TCP server), like an
//! ingress: it counts full and resumed handshakes and TCP connections, issues
//! stateless session tickets (as nginx and most ingresses do), and can refuse
//! connections past a cap on concurrent ones (an overloaded ingress).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Counters of a [`TlsFront`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// TCP connections accepted (refused ones included).
    pub connections: u64,
    /// Handshakes that completed in full (key exchange and certificate).
    pub full: u64,
    /// Handshakes that resumed a session.
    pub resumed: u64,
    /// Connections closed at once because `max_concurrent` were open.
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    full: AtomicU64,
    resumed: AtomicU64,
    refused: AtomicU64,
    open: AtomicUsize,
}

/// Serves TLS on `addr`, piping each connection to `upstream`.
pub struct TlsFront {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: Option<JoinHandle<()>>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// A server config for `cert_pem`/`key_pem` with stateless tickets (a fresh
/// ticket key: a restarted front resumes nothing issued before).
pub fn server_config(cert_pem: &str, key_pem: &str) -> io::Result<ServerConfig> {
    let bad = |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&e))?;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl TlsFront {
    /// Listens on `addr` (port 0 picks one). `max_concurrent`: connections
    /// open at once past which new ones are closed without a handshake.
    pub async fn start(addr: SocketAddr, config: ServerConfig, upstream: SocketAddr, max_concurrent: Option<usize>) -> io::Result<TlsFront> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    // Out of file descriptors, say: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                c.connections.fetch_add(1, Ordering::Relaxed);
                if max_concurrent.is_some_and(|max| c.open.load(Ordering::Relaxed) >= max) {
                    c.refused.fetch_add(1, Ordering::Relaxed);
                    drop(sock);
                    continue;
                }
                c.open.fetch_add(1, Ordering::Relaxed);
                let acceptor = acceptor.clone();
                let c = c.clone();
                tokio::spawn(async move {
                    serve(acceptor, sock, upstream, &c).await;
                    c.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Ok(TlsFront {
            addr,
            counters,
            task: Some(task),
        })
    }

    /// Stops listening; the address is free when this returns (connections
    /// already accepted finish on their own).
    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> TlsStats {
        let c = &self.counters;
        TlsStats {
            connections: c.connections.load(Ordering::Relaxed),
            full: c.full.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }
}

async fn serve(acceptor: tokio_rustls::TlsAcceptor, sock: TcpStream, upstream: SocketAddr, c: &Counters) {
    let _ = sock.set_nodelay(true);
    let Ok(mut tls) = acceptor.accept(sock).await else { return };
    match tls.get_ref().1.handshake_kind() {
        Some(HandshakeKind::Resumed) => c.resumed.fetch_add(1, Ordering::Relaxed),
        _ => c.full.fetch_add(1, Ordering::Relaxed),
    };
    let Ok(mut up) = TcpStream::connect(upstream).await else { return };
    let _ = up.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
}
