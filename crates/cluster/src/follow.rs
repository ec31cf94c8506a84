//! Following a key prefix: a snapshot, then every change in revision order,
//! resumed after failures from the last revision seen (or a fresh snapshot
//! when etcd compacted past it). Failures are counted, never fatal.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::etcd::{Etcd, EtcdError, is_put};
use super::status::ClusterStatus;
use crate::etcd_api::mvccpb::KeyValue;

/// One change under the followed prefix.
#[derive(Debug)]
pub enum Change {
    /// Everything under the prefix, replacing what came before.
    Reset(Vec<KeyValue>),
    Put(KeyValue),
    /// The key's deletion (value empty, `mod_revision` the delete's).
    Delete(KeyValue),
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Follows `prefix` from `from` (the revision a snapshot the caller already
/// holds was read at), or from a fresh snapshot when None. Changes arrive on
/// the returned channel until `cancel`.
pub fn follow(etcd: Etcd, prefix: String, from: Option<i64>, status: ClusterStatus, cancel: CancellationToken) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = run(&etcd, &prefix, from, &status, &tx) => {}
        }
    });
    rx
}

async fn run(etcd: &Etcd, prefix: &str, from: Option<i64>, status: &ClusterStatus, tx: &mpsc::Sender<Change>) {
    // The last revision whose changes the consumer has.
    let mut seen = from;
    let mut backoff = RETRY_MIN;
    loop {
        let result: Result<(), EtcdError> = async {
            let start = match seen {
                Some(r) => r,
                None => {
                    let (kvs, revision) = etcd.range_prefix(prefix).await?;
                    tx.send(Change::Reset(kvs)).await.map_err(|_| EtcdError::WatchEnded("consumer gone".into()))?;
                    seen = Some(revision);
                    revision
                }
            };
            let mut stream = std::pin::pin!(etcd.watch_prefix(prefix, start + 1).await?);
            backoff = RETRY_MIN;
            while let Some(item) = stream.next().await {
                let (revision, events) = item?;
                for e in events {
                    let Some(kv) = e.kv.clone() else { continue };
                    let change = if is_put(&e) { Change::Put(kv) } else { Change::Delete(kv) };
                    tx.send(change).await.map_err(|_| EtcdError::WatchEnded("consumer gone".into()))?;
                }
                seen = Some(seen.unwrap_or(0).max(revision));
            }
            Err(EtcdError::WatchEnded("stream ended".into()))
        }
        .await;
        if tx.is_closed() {
            return;
        }
        match result {
            Err(EtcdError::Compacted(_)) => seen = None,
            Err(e) => {
                status.etcd_error();
                warn!(prefix, error = %e, "etcd watch interrupted; resuming");
            }
            Ok(()) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}
