//! The gRPC edge of xDS: `envoy.service.discovery.v3.AggregatedDiscoveryService`
//! and `envoy.service.endpoint.v3.EndpointDiscoveryService`, state-of-the-world
//! and delta. One task per stream drives the per-type protocol state
//! (`sotw`, `delta`) with the client's requests and each new catalog; streams
//! are admitted under a cap (`--max-xds-streams`, RESOURCE_EXHAUSTED past it).
//! Read only: nothing a client sends changes the engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use super::EDS_TYPE;
use super::catalog::{Catalog, CatalogRx};
use super::delta::Delta;
use super::sotw::{Kind, Sotw};

/// One protocol variant, as the stream driver sees it.
trait Variant: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    fn new(type_url: &str) -> Self;
    fn type_url(req: &Self::Req) -> &str;
    fn node(req: &Self::Req) -> Option<&Node>;
    fn nonce(req: &Self::Req) -> &str;
    fn on_request(&mut self, req: &Self::Req, catalog: &Catalog, nonces: &mut u64) -> (Kind, Option<Self::Resp>);
    fn on_catalog(&mut self, catalog: &Catalog, nonces: &mut u64) -> Option<Self::Resp>;
}

impl Variant for Sotw {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    fn new(type_url: &str) -> Self {
        Sotw::new(type_url)
    }
    fn type_url(req: &DiscoveryRequest) -> &str {
        &req.type_url
    }
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn nonce(req: &DiscoveryRequest) -> &str {
        &req.response_nonce
    }
    fn on_request(&mut self, req: &DiscoveryRequest, catalog: &Catalog, nonces: &mut u64) -> (Kind, Option<DiscoveryResponse>) {
        Sotw::on_request(self, req, catalog, nonces)
    }
    fn on_catalog(&mut self, catalog: &Catalog, nonces: &mut u64) -> Option<DiscoveryResponse> {
        Sotw::on_catalog(self, catalog, nonces)
    }
}

impl Variant for Delta {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    fn new(type_url: &str) -> Self {
        Delta::new(type_url)
    }
    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn nonce(req: &DeltaDiscoveryRequest) -> &str {
        &req.response_nonce
    }
    fn on_request(&mut self, req: &DeltaDiscoveryRequest, catalog: &Catalog, nonces: &mut u64) -> (Kind, Option<DeltaDiscoveryResponse>) {
        Delta::on_request(self, req, catalog, nonces)
    }
    fn on_catalog(&mut self, catalog: &Catalog, nonces: &mut u64) -> Option<DeltaDiscoveryResponse> {
        Delta::on_catalog(self, catalog, nonces)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The default of `--max-xds-streams`: far above a fleet's Envoys, far below
/// what would exhaust the daemon (each stream is a task, a channel and the
/// responses in flight).
pub const DEFAULT_MAX_XDS_STREAMS: usize = 1024;

/// Serves xDS from the catalog.
#[derive(Clone)]
pub struct XdsService {
    catalog: CatalogRx,
    shutdown: CancellationToken,
    /// One permit per open stream, held by its task.
    streams: Arc<Semaphore>,
    max_streams: usize,
}

impl XdsService {
    pub fn new(catalog: CatalogRx, shutdown: CancellationToken, max_streams: usize) -> Self {
        XdsService {
            catalog,
            shutdown,
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
        }
    }

    /// Starts the task of one stream, or refuses it past the cap. `ads`
    /// streams carry any type (named in every request); the others carry EDS
    /// only (an empty type URL means EDS).
    fn stream<V: Variant>(&self, rpc: &'static str, ads: bool, req: Request<Streaming<V::Req>>) -> Result<Response<BoxStream<V::Resp>>, Status> {
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            warn!(rpc, peer = ?req.remote_addr(), max = self.max_streams, "xds stream refused: too many open streams");
            return Err(Status::resource_exhausted(format!(
                "too many xDS streams: at most {} at once (--max-xds-streams)",
                self.max_streams
            )));
        };
        let peer = req.remote_addr();
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let opened = Opened { rpc, ads, peer, permit };
        tokio::spawn(drive::<V>(opened, inbound, self.catalog.clone(), self.shutdown.clone(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn node_id(node: &Option<Node>) -> &str {
    node.as_ref().map_or("", |n| n.id.as_str())
}

/// What a stream was opened with.
struct Opened {
    rpc: &'static str,
    /// An aggregated (ADS) stream: any type, named in every request.
    ads: bool,
    peer: Option<SocketAddr>,
    /// Held for the stream's life: the cap counts open streams.
    permit: OwnedSemaphorePermit,
}

async fn drive<V: Variant>(
    opened: Opened,
    mut inbound: Streaming<V::Req>,
    mut catalog: CatalogRx,
    shutdown: CancellationToken,
    tx: mpsc::Sender<Result<V::Resp, Status>>,
) {
    let Opened {
        rpc,
        ads,
        peer,
        permit: _permit,
    } = opened;
    let mut types: HashMap<String, V> = HashMap::new();
    let mut nonces = 0u64;
    let mut node: Option<Node> = None;
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    loop {
        let mut out = Vec::new();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = inbound.message() => {
                let req = match msg {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(status) => {
                        debug!(rpc, node = node_id(&node), error = %status.message(), "xds stream failed");
                        break;
                    }
                };
                if node.is_none()
                    && let Some(n) = V::node(&req) {
                        info!(rpc, %peer, node = %n.id, cluster = %n.cluster, user_agent = %n.user_agent_name, "xds stream opened");
                        node = Some(n.clone());
                    }
                let type_url = match (V::type_url(&req), ads) {
                    ("", false) => EDS_TYPE,
                    ("", true) => {
                        let _ = tx.send(Err(Status::invalid_argument("type_url is required on an aggregated (ADS) stream"))).await;
                        break;
                    }
                    (t, _) => t,
                };
                if type_url != EDS_TYPE {
                    if !types.contains_key(type_url) {
                        warn!(rpc, node = node_id(&node), type_url, "xds request for a resource type this server does not serve; ignored");
                    }
                    continue;
                }
                let state = types.entry(type_url.to_owned()).or_insert_with(|| V::new(type_url));
                let current = catalog.borrow_and_update().clone();
                let (kind, response) = state.on_request(&req, &current, &mut nonces);
                match &kind {
                    Kind::Nack { version, message } => warn!(
                        rpc, node = node_id(&node), type_url, nonce = V::nonce(&req), accepted_version = %version, error = %message,
                        "xds client rejected a response (NACK); it keeps its last accepted version"
                    ),
                    Kind::Ack { version } => debug!(rpc, node = node_id(&node), type_url, nonce = V::nonce(&req), version = %version, "xds ACK"),
                    Kind::Stale => debug!(rpc, node = node_id(&node), type_url, nonce = V::nonce(&req), "xds request with a stale nonce ignored"),
                    Kind::Request => debug!(rpc, node = node_id(&node), type_url, "xds request"),
                }
                out.extend(response);
            }
            changed = catalog.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = catalog.borrow_and_update().clone();
                for state in types.values_mut() {
                    out.extend(state.on_catalog(&current, &mut nonces));
                }
            }
        }
        for response in out {
            if tx.send(Ok(response)).await.is_err() {
                info!(rpc, node = node_id(&node), "xds stream closed");
                return;
            }
        }
    }
    info!(rpc, node = node_id(&node), "xds stream closed");
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for XdsService {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(&self, req: Request<Streaming<DiscoveryRequest>>) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        self.stream::<Sotw>("StreamAggregatedResources", true, req)
    }

    async fn delta_aggregated_resources(
        &self,
        req: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.stream::<Delta>("DeltaAggregatedResources", true, req)
    }
}

#[tonic::async_trait]
impl EndpointDiscoveryService for XdsService {
    type StreamEndpointsStream = BoxStream<DiscoveryResponse>;
    type DeltaEndpointsStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_endpoints(&self, req: Request<Streaming<DiscoveryRequest>>) -> Result<Response<Self::StreamEndpointsStream>, Status> {
        self.stream::<Sotw>("StreamEndpoints", false, req)
    }

    async fn delta_endpoints(&self, req: Request<Streaming<DeltaDiscoveryRequest>>) -> Result<Response<Self::DeltaEndpointsStream>, Status> {
        self.stream::<Delta>("DeltaEndpoints", false, req)
    }

    /// One-shot fetch: the named resources (every group for none) at the current version.
    async fn fetch_endpoints(&self, req: Request<DiscoveryRequest>) -> Result<Response<DiscoveryResponse>, Status> {
        let req = req.into_inner();
        if !req.type_url.is_empty() && req.type_url != EDS_TYPE {
            return Err(Status::invalid_argument(format!("type_url: this service serves only {EDS_TYPE}")));
        }
        let catalog = self.catalog.borrow().clone();
        let resources = if req.resource_names.is_empty() {
            catalog.resources.values().map(|e| e.resource.clone()).collect()
        } else {
            req.resource_names.iter().filter_map(|n| catalog.get(n)).map(|e| e.resource.clone()).collect()
        };
        Ok(Response::new(DiscoveryResponse {
            version_info: catalog.version.to_string(),
            resources,
            type_url: EDS_TYPE.to_owned(),
            ..Default::default()
        }))
    }
}
