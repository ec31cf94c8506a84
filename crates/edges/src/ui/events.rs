//! `/events`: the page's Server-Sent Events, read from the engine's `Feed`
//! (the one WatchGroupHealth and xDS read): a `snapshot`, then one `changed`
//! or `deleted` message per change with the transitions since the last one,
//! and a fresh snapshot after falling behind. It has no task or channel of
//! its own: it is polled only as fast as the browser reads. Nothing waits for it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::model::{self, Update};
use super::page::Scope;
use super::{Ui, now_ms, snapshot_of};
use mcp_health_engine::{Engine, EventKind, Feed, FeedItem};

struct EventStream {
    engine: Engine,
    scope: Scope,
    feed: Feed,
    last_seq: u64,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

fn sse(u: &Update) -> Result<SseEvent, Infallible> {
    // Serializing plain strings, numbers and vectors cannot fail.
    let data = serde_json::to_string(u).unwrap_or_else(|_| "{}".to_owned());
    Ok(SseEvent::default().event(u.kind).data(data))
}

impl EventStream {
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, EventStream)> {
        let item = tokio::select! {
            biased;
            item = self.feed.next() => item?.ok()?,
            () = self.shutdown.cancelled() => return None,
        };
        let update = match item {
            FeedItem::Snapshot { sequence, groups, .. } => {
                let (u, seq) = snapshot_of(&self.engine, &self.scope, sequence, &groups);
                self.last_seq = seq;
                u
            }
            FeedItem::Change(e) => {
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
                Update {
                    kind,
                    revision: e.sequence,
                    now_ms: now,
                    since_ms: history.started_ms(),
                    groups,
                    deleted,
                    timeline,
                    doubt: model::doubt(&self.engine, std::time::SystemTime::now()),
                }
            }
        };
        Some((sse(&update), self))
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
    // The snapshot and the change feed come from the owner in one step.
    let feed = match ui.engine.feed(scope.group.clone()).await {
        Ok(feed) => feed,
        Err(e) => return (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    let stream = EventStream {
        engine: ui.engine.clone(),
        scope,
        feed,
        last_seq: 0,
        shutdown: ui.shutdown.clone(),
        _permit: permit,
    };
    Sse::new(futures_util::stream::unfold(stream, EventStream::next))
        .keep_alive(KeepAlive::default())
        .into_response()
}
