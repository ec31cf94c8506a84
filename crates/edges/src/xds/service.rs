//! The gRPC edge of xDS: `envoy.service.discovery.v3.AggregatedDiscoveryService`
//! and `envoy.service.endpoint.v3.EndpointDiscoveryService`, state-of-the-world
//! and delta. One task per stream drives the per-type protocol state
//! (`sotw`, `delta`) with the client's requests and each new catalog; streams
//! are admitted under a cap (`--max-xds-streams`, RESOURCE_EXHAUSTED past it).
//! The services are hand-written tower glue (`AdsServer`, `EdsServer`, the
//! paths of envoy-types' generated servers): requests are decoded with tonic,
//! responses sent as `wire::GrpcBody`, whose resources are the catalog's bytes.
//! Read only: nothing a client sends changes the engine.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use http_body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::codegen::{BoxFuture, Service, StdError};
use tonic::server::NamedService;
use tonic::{Request, Status, Streaming};
use tonic_prost::ProstDecoder;
use tracing::{debug, info, warn};

use super::EDS_TYPE;
use super::catalog::{Catalog, CatalogRx};
use super::delta::Delta;
use super::sotw::{Kind, Sotw};
use super::wire::{DeltaDiscoveryResponse, DiscoveryResponse, GrpcBody, GrpcFrames};

/// One protocol variant, as the stream driver sees it.
trait Variant: Send + 'static {
    type Req: prost::Message + Default + Send + 'static;
    type Resp: GrpcFrames + Send + 'static;
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
    fn stream<V: Variant>(&self, rpc: &'static str, ads: bool, peer: Option<SocketAddr>, inbound: Streaming<V::Req>) -> Result<GrpcBody<V::Resp>, Status> {
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            warn!(rpc, ?peer, max = self.max_streams, "xds stream refused: too many open streams");
            return Err(Status::resource_exhausted(format!(
                "too many xDS streams: at most {} at once (--max-xds-streams)",
                self.max_streams
            )));
        };
        let (tx, rx) = mpsc::channel(4);
        let opened = Opened { rpc, ads, peer, permit };
        tokio::spawn(drive::<V>(opened, inbound, self.catalog.clone(), self.shutdown.clone(), tx));
        Ok(GrpcBody::new(rx))
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

/// The client's request messages, decoded as tonic's generated servers do.
fn inbound<T: prost::Message + Default + Send + 'static, B>(body: B, max_message_bytes: Option<usize>) -> Streaming<T>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    Streaming::new_request(ProstDecoder::<T>::default(), body, None, max_message_bytes)
}

/// The HTTP response of an RPC: its gRPC body, or a trailers-only error.
fn grpc_response<R: GrpcFrames + Send + 'static>(body: Result<GrpcBody<R>, Status>) -> http::Response<tonic::body::Body> {
    match body {
        Ok(body) => {
            let mut response = http::Response::new(tonic::body::Body::new(body));
            response.headers_mut().insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
            response
        }
        Err(status) => status.into_http(),
    }
}

fn unimplemented() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(Status::GRPC_STATUS, (tonic::Code::Unimplemented as i32).into());
    headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
    response
}

impl XdsService {
    /// Opens a stream of variant `V` on an HTTP request.
    fn serve_stream<V: Variant, B>(
        &self,
        rpc: &'static str,
        ads: bool,
        req: http::Request<B>,
        max_message_bytes: Option<usize>,
    ) -> http::Response<tonic::body::Body>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let req = Request::from_http(req);
        let peer = req.remote_addr();
        let body = inbound::<V::Req, B>(req.into_inner(), max_message_bytes);
        grpc_response(self.stream::<V>(rpc, ads, peer, body))
    }

    /// One-shot fetch: the named resources (every group for none) at the current version.
    fn fetch_endpoints(&self, req: DiscoveryRequest) -> Result<DiscoveryResponse, Status> {
        if !req.type_url.is_empty() && req.type_url != EDS_TYPE {
            return Err(Status::invalid_argument(format!("type_url: this service serves only {EDS_TYPE}")));
        }
        let catalog = self.catalog.borrow().clone();
        let resources = if req.resource_names.is_empty() {
            catalog.resources.values().map(|e| e.resource.clone()).collect()
        } else {
            req.resource_names.iter().filter_map(|n| catalog.get(n)).map(|e| e.resource.clone()).collect()
        };
        Ok(DiscoveryResponse {
            version_info: catalog.version.to_string(),
            resources,
            type_url: EDS_TYPE.to_owned(),
            nonce: String::new(),
        })
    }
}

/// One xDS gRPC service written by hand instead of envoy-types' generated
/// server, so that responses go out through `GrpcBody` without copying
/// resources: its name, and how each of its methods is served.
pub trait XdsRoutes: Send + Sync + 'static {
    const NAME: &'static str;

    fn route<B>(xds: &XdsService, req: http::Request<B>, max: Option<usize>) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send + 'static;
}

/// `envoy.service.discovery.v3.AggregatedDiscoveryService`: SotW and delta ADS.
pub enum Ads {}

/// `envoy.service.endpoint.v3.EndpointDiscoveryService`: SotW, delta and fetch.
pub enum Eds {}

/// A hand-written xDS service (`Ads` or `Eds`) over the one `XdsService`.
pub struct XdsServer<R> {
    xds: XdsService,
    max_decoding_message_size: Option<usize>,
    routes: std::marker::PhantomData<fn() -> R>,
}

pub type AdsServer = XdsServer<Ads>;
pub type EdsServer = XdsServer<Eds>;

impl<R> Clone for XdsServer<R> {
    fn clone(&self) -> Self {
        XdsServer {
            xds: self.xds.clone(),
            max_decoding_message_size: self.max_decoding_message_size,
            routes: std::marker::PhantomData,
        }
    }
}

impl<R: XdsRoutes> XdsServer<R> {
    pub fn new(xds: XdsService) -> Self {
        XdsServer {
            xds,
            max_decoding_message_size: None,
            routes: std::marker::PhantomData,
        }
    }

    /// The largest request message accepted, as on tonic's generated servers.
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl<R: XdsRoutes> NamedService for XdsServer<R> {
    const NAME: &'static str = R::NAME;
}

impl<R, B> Service<http::Request<B>> for XdsServer<R>
where
    R: XdsRoutes,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        R::route(&self.xds, req, self.max_decoding_message_size)
    }
}

fn ready(response: http::Response<tonic::body::Body>) -> BoxFuture<http::Response<tonic::body::Body>, Infallible> {
    Box::pin(std::future::ready(Ok(response)))
}

impl XdsRoutes for Ads {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";

    fn route<B>(xds: &XdsService, req: http::Request<B>, max: Option<usize>) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        ready(match req.uri().path() {
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources" => {
                xds.serve_stream::<Sotw, B>("StreamAggregatedResources", true, req, max)
            }
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources" => {
                xds.serve_stream::<Delta, B>("DeltaAggregatedResources", true, req, max)
            }
            _ => unimplemented(),
        })
    }
}

impl XdsRoutes for Eds {
    const NAME: &'static str = "envoy.service.endpoint.v3.EndpointDiscoveryService";

    fn route<B>(xds: &XdsService, req: http::Request<B>, max: Option<usize>) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        match req.uri().path() {
            "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints" => ready(xds.serve_stream::<Sotw, B>("StreamEndpoints", false, req, max)),
            "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints" => ready(xds.serve_stream::<Delta, B>("DeltaEndpoints", false, req, max)),
            "/envoy.service.endpoint.v3.EndpointDiscoveryService/FetchEndpoints" => {
                let xds = xds.clone();
                Box::pin(async move {
                    let mut messages = inbound::<DiscoveryRequest, B>(req.into_body(), max);
                    let request = match messages.message().await {
                        Ok(Some(request)) => request,
                        Ok(None) => return Ok(Status::internal("missing request message").into_http()),
                        Err(status) => return Ok(status.into_http()),
                    };
                    let body = xds.fetch_endpoints(request).map(|response| {
                        let (tx, rx) = mpsc::channel(1);
                        // A fresh channel of one has room for its one message.
                        let _ = tx.try_send(Ok(response));
                        GrpcBody::new(rx)
                    });
                    Ok(grpc_response(body))
                })
            }
            _ => ready(unimplemented()),
        }
    }
}
