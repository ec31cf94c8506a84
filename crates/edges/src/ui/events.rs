//! `/events`: the page's Server-Sent Events, fed by the engine's watch (the
//! one WatchGroupHealth uses): a `snapshot`, then one `changed` or `deleted`
//! message per change with the transitions since the last one. Like the gRPC
//! watch it has no task or channel of its own: it is polled only as fast as
//! the browser reads, so a slow reader falls behind the broadcast buffer,
//! gets `Lagged` and is sent a fresh snapshot. Nothing waits for it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;

use super::model::{self, Update};
use super::page::Scope;
use super::{Ui, now_ms, snapshot};
use mcp_health_engine::{Engine, EventKind, Subscription};

struct Feed {
    engine: Engine,
    scope: Scope,
    sub: Subscription,
    pending: Option<Update>,
    last_revision: u64,
    last_seq: u64,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

fn sse(u: &Update) -> Result<SseEvent, Infallible> {
    // Serializing plain strings, numbers and vectors cannot fail.
    let data = serde_json::to_string(u).unwrap_or_else(|_| "{}".to_owned());
    Ok(SseEvent::default().event(u.kind).data(data))
}

impl Feed {
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, Feed)> {
        if let Some(u) = self.pending.take() {
            return Some((sse(&u), self));
        }
        loop {
            let event = tokio::select! {
                biased;
                event = self.sub.events.recv() => event,
                () = self.shutdown.cancelled() => return None,
            };
            match event {
                Ok(e) => {
                    if e.sequence <= self.last_revision || self.scope.group.as_ref().is_some_and(|g| *g != e.group.name) {
                        continue;
                    }
                    self.last_revision = e.sequence;
                    let history = self.engine.history();
                    let now = now_ms();
                    let fresh = history.timeline(self.last_seq, usize::MAX);
                    self.last_seq = fresh.last().map_or(self.last_seq, |t| t.seq);
                    let timeline = fresh
                        .iter()
                        .filter(|t| self.scope.group.as_ref().is_none_or(|g| **g == *t.group))
                        .filter(|t| self.scope.backend.as_ref().is_none_or(|b| **b == *t.backend))
                        .map(model::timeline)
                        .collect();
                    let (kind, groups, deleted) = match e.kind {
                        EventKind::Changed => ("changed", vec![model::group(&e.group, history, now)], Vec::new()),
                        EventKind::Deleted => ("deleted", Vec::new(), vec![e.group.name.clone()]),
                    };
                    let u = Update {
                        kind,
                        revision: e.sequence,
                        now_ms: now,
                        since_ms: history.started_ms(),
                        groups,
                        deleted,
                        timeline,
                    };
                    return Some((sse(&u), self));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind: start over from a fresh snapshot.
                    self.sub = self.engine.watch(self.scope.group.clone()).await.ok()?;
                    let (u, seq) = snapshot(&self.engine, &self.scope).await.ok()?;
                    self.last_revision = u.revision;
                    self.last_seq = seq;
                    return Some((sse(&u), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

pub(super) async fn stream(State(ui): State<Ui>, RawQuery(q): RawQuery) -> Response {
    let Ok(permit) = Arc::clone(&ui.streams).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live pages; reload later").into_response();
    };
    let mut scope = Scope::default();
    for (k, v) in url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "group" if !v.is_empty() => scope.group = Some(v.into_owned()),
            "backend" if !v.is_empty() => scope.backend = Some(v.into_owned()),
            _ => {}
        }
    }
    // Subscribe first, then snapshot: a change between the two arrives twice
    // at worst, and the revision check drops the repeat.
    let sub = match ui.engine.watch(scope.group.clone()).await {
        Ok(sub) => sub,
        Err(e) => return (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    let (first, seq) = match snapshot(&ui.engine, &scope).await {
        Ok(s) => s,
        Err(e) => return (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    let feed = Feed {
        engine: ui.engine.clone(),
        last_revision: first.revision,
        last_seq: seq,
        pending: Some(first),
        scope,
        sub,
        shutdown: ui.shutdown.clone(),
        _permit: permit,
    };
    Sse::new(futures_util::stream::unfold(feed, Feed::next))
        .keep_alive(KeepAlive::default())
        .into_response()
}
