//! Which protocol revision a Streamable HTTP backend speaks: pinned by the
//! spec, remembered from an earlier probe, or detected (`server/discover`
//! first, then `initialize`, as the official SDK's client negotiates). A
//! remembered revision is tried first and re-detected only when the backend's
//! answer refutes it.

use super::discover::{self, STATELESS_REVISION};
use super::streamable::{self, HANDSHAKE_REVISION, Session};
use super::{Ctx, ProbeMemory, Ready, Stop};

/// Probes with the pinned, remembered or detected revision; updates `memory`.
pub async fn probe(ctx: &Ctx<'_>, memory: &mut ProbeMemory, slot: &mut Option<Session>) -> Result<Ready, Stop> {
    if let Some(pin) = ctx.backend().pinned_revision.as_deref() {
        let result = if pin == STATELESS_REVISION {
            discover::probe(ctx).await
        } else {
            streamable::probe(ctx, pin, true, slot).await
        };
        // A pinned backend has nothing to re-detect: a refutation is its failure.
        return result.map_err(|stop| match stop {
            Stop::Refuted(reason) => Stop::Failed(reason),
            other => other,
        });
    }
    if let Some(remembered) = memory.detected_revision.clone() {
        let result = if remembered == STATELESS_REVISION {
            discover::probe(ctx).await
        } else {
            streamable::probe(ctx, HANDSHAKE_REVISION, false, slot).await
        };
        match result {
            Ok(ready) => {
                remember(memory, &ready);
                return Ok(ready);
            }
            Err(Stop::Refuted(_)) => {
                tracing::info!(revision = %remembered, "the backend refuted the remembered revision; detecting again");
                memory.detected_revision = None;
            }
            Err(stop) => return Err(stop),
        }
    }
    detect(ctx, memory, slot).await
}

async fn detect(ctx: &Ctx<'_>, memory: &mut ProbeMemory, slot: &mut Option<Session>) -> Result<Ready, Stop> {
    match discover::probe(ctx).await {
        Ok(ready) => {
            remember(memory, &ready);
            return Ok(ready);
        }
        Err(Stop::Refuted(_)) => {}
        // Refused, timed out, 401, 5xx...: not an era verdict.
        Err(stop) => return Err(stop),
    }
    let ready = streamable::probe(ctx, HANDSHAKE_REVISION, false, slot).await.map_err(|stop| match stop {
        Stop::Refuted(reason) => Stop::Failed(reason),
        other => other,
    })?;
    remember(memory, &ready);
    Ok(ready)
}

fn remember(memory: &mut ProbeMemory, ready: &Ready) {
    memory.detected_revision = Some(ready.facts.protocol_version.clone());
}
