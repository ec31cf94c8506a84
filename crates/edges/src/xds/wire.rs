//! The xDS responses as streams send them, and their gRPC encoding without
//! copying resources: every resource is a `google.protobuf.Any` encoded once
//! by the catalog into a refcounted `Bytes` ([`SharedAny`]); a response holds
//! clones of those handles, and [`GrpcBody`] sends each one as its own HTTP/2
//! DATA frame (h2 keeps a `Bytes` by reference until it is written), between
//! small frames carrying the gRPC message header and the response's own
//! fields. The bytes on the wire are those prost writes for envoy's
//! `DiscoveryResponse` and `DeltaDiscoveryResponse` (same fields, same order).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::google::protobuf::Any;
use http_body::Frame;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tokio::sync::mpsc;
use tonic::Status;

/// `DiscoveryResponse.resources` and `Resource.resource` are both field 2:
/// one framing serves SotW and delta.
const RESOURCE_FIELD: u32 = 2;

/// One resource, encoded once and shared by every response that carries it:
/// the `Any` already framed as a length-delimited field 2 (key, length, message).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedAny {
    field: Bytes,
    /// Where the `Any`'s `value` starts in `field` (it is the last field of the `Any`).
    value_start: usize,
}

impl SharedAny {
    /// Encodes `any` once.
    pub fn new(any: &Any) -> Self {
        let len = any.encoded_len();
        let mut buf = BytesMut::with_capacity(1 + encoded_len_varint(len as u64) + len);
        encode_key(RESOURCE_FIELD, WireType::LengthDelimited, &mut buf);
        encode_varint(len as u64, &mut buf);
        any.encode_raw(&mut buf);
        let field = buf.freeze();
        SharedAny {
            value_start: field.len() - any.value.len(),
            field,
        }
    }

    /// The encoded message inside the `Any` (a `ClusterLoadAssignment`).
    pub fn value(&self) -> &[u8] {
        &self.field[self.value_start..]
    }

    /// The shared buffer, framed as field 2: what goes on the wire as is.
    pub fn field(&self) -> &Bytes {
        &self.field
    }

    /// The `Any` itself (a copy; for tests and diagnostics).
    pub fn to_any(&self) -> Any {
        // The buffer was encoded from an `Any` (`new`): it decodes.
        Any::decode_length_delimited(&self.field[1..]).unwrap_or_default()
    }
}

impl fmt::Debug for SharedAny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedAny").field("len", &self.field.len()).finish()
    }
}

/// envoy's `DiscoveryResponse` (SotW) with the fields we send; resources shared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiscoveryResponse {
    pub version_info: String,
    pub resources: Vec<SharedAny>,
    pub type_url: String,
    pub nonce: String,
}

/// envoy's `Resource` (delta) with the fields we send.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub resource: SharedAny,
}

/// envoy's `DeltaDiscoveryResponse` with the fields we send; resources shared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeltaDiscoveryResponse {
    pub system_version_info: String,
    pub resources: Vec<Resource>,
    pub type_url: String,
    pub removed_resources: Vec<String>,
    pub nonce: String,
}

/// A response as gRPC message frames: the 5-byte message header and the
/// fields in small buffers, every resource as its shared buffer.
pub trait GrpcFrames {
    fn grpc_frames(&self) -> Vec<Bytes>;
}

/// The encoded length of a proto3 string field (nothing when empty, as prost).
fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        return 0;
    }
    prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

fn put_str(tag: u32, s: &str, buf: &mut BytesMut) {
    if s.is_empty() {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.put_slice(s.as_bytes());
}

/// Collects frames: small writes go into one buffer, cut before each shared one.
struct Frames {
    out: Vec<Bytes>,
    small: BytesMut,
}

impl Frames {
    /// Starts a gRPC message of `len` bytes: uncompressed flag, big-endian length.
    fn message(len: usize, resources: usize) -> Self {
        let mut small = BytesMut::with_capacity(64);
        small.put_u8(0);
        // A message longer than u32 cannot be framed by gRPC; the catalog of a
        // daemon is far below 4 GiB (its groups are bounded by --max-groups).
        small.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        Frames {
            out: Vec::with_capacity(2 * resources + 2),
            small,
        }
    }

    fn small(&mut self) -> &mut BytesMut {
        &mut self.small
    }

    fn shared(&mut self, b: &Bytes) {
        if !self.small.is_empty() {
            self.out.push(self.small.split().freeze());
        }
        self.out.push(b.clone());
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.small.is_empty() {
            self.out.push(self.small.freeze());
        }
        self.out
    }
}

impl GrpcFrames for DiscoveryResponse {
    fn grpc_frames(&self) -> Vec<Bytes> {
        let len =
            str_len(1, &self.version_info) + self.resources.iter().map(|r| r.field.len()).sum::<usize>() + str_len(4, &self.type_url) + str_len(5, &self.nonce);
        let mut f = Frames::message(len, self.resources.len());
        put_str(1, &self.version_info, f.small());
        for r in &self.resources {
            f.shared(&r.field);
        }
        put_str(4, &self.type_url, f.small());
        put_str(5, &self.nonce, f.small());
        f.finish()
    }
}

impl Resource {
    /// The length of the `Resource` message itself.
    fn body_len(&self) -> usize {
        str_len(1, &self.version) + self.resource.field.len() + str_len(3, &self.name)
    }
}

impl GrpcFrames for DeltaDiscoveryResponse {
    fn grpc_frames(&self) -> Vec<Bytes> {
        let resources: usize = self
            .resources
            .iter()
            .map(|r| {
                let n = r.body_len();
                prost::encoding::key_len(2) + encoded_len_varint(n as u64) + n
            })
            .sum();
        // Repeated strings are written even when empty.
        let removed: usize = self
            .removed_resources
            .iter()
            .map(|s| prost::encoding::key_len(6) + encoded_len_varint(s.len() as u64) + s.len())
            .sum();
        let len = str_len(1, &self.system_version_info) + resources + str_len(4, &self.type_url) + str_len(5, &self.nonce) + removed;
        let mut f = Frames::message(len, self.resources.len());
        put_str(1, &self.system_version_info, f.small());
        for r in &self.resources {
            let buf = f.small();
            encode_key(2, WireType::LengthDelimited, buf);
            encode_varint(r.body_len() as u64, buf);
            put_str(1, &r.version, buf);
            f.shared(&r.resource.field);
            put_str(3, &r.name, f.small());
        }
        put_str(4, &self.type_url, f.small());
        put_str(5, &self.nonce, f.small());
        for s in &self.removed_resources {
            let buf = f.small();
            encode_key(6, WireType::LengthDelimited, buf);
            encode_varint(s.len() as u64, buf);
            buf.put_slice(s.as_bytes());
        }
        f.finish()
    }
}

/// The body of a server-streaming (or unary) gRPC response: each message the
/// stream's task sends, as its frames, then the trailers (`grpc-status` 0 when
/// the task ends, or its error).
pub struct GrpcBody<R> {
    rx: Option<mpsc::Receiver<Result<R, Status>>>,
    queued: VecDeque<Bytes>,
}

impl<R> GrpcBody<R> {
    pub fn new(rx: mpsc::Receiver<Result<R, Status>>) -> Self {
        GrpcBody {
            rx: Some(rx),
            queued: VecDeque::new(),
        }
    }
}

fn trailers(status: &Status) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        // Only a message that cannot be a header value fails: send the code alone.
        map.insert(Status::GRPC_STATUS, http::HeaderValue::from(status.code() as i32));
    }
    map
}

impl<R: GrpcFrames + Send + 'static> http_body::Body for GrpcBody<R> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            let Some(rx) = this.rx.as_mut() else {
                return Poll::Ready(None);
            };
            let status = match ready!(rx.poll_recv(cx)) {
                Some(Ok(msg)) => {
                    this.queued.extend(msg.grpc_frames());
                    continue;
                }
                Some(Err(status)) => status,
                None => Status::ok(""),
            };
            this.rx = None;
            return Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rx.is_none() && self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints};
    use envoy_types::pb::envoy::service::discovery::v3 as envoy;
    use envoy_types::util::pack_any;
    use http_body_util::BodyExt;

    use super::*;

    fn assignment(name: &str, endpoints: usize) -> Any {
        pack_any(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: (0..endpoints).map(|_| LbEndpoint::default()).collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// The gRPC message: the frames joined, the 5-byte header checked and removed.
    fn message(frames: &[Bytes]) -> Vec<u8> {
        let all: Vec<u8> = frames.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(all[0], 0, "uncompressed");
        let len = u32::from_be_bytes(all[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, all.len() - 5, "the header's length is the message's");
        all[5..].to_vec()
    }

    #[test]
    fn sotw_frames_are_the_bytes_prost_writes_for_envoys_discovery_response() {
        let anys = [assignment("mcp-health/a", 3), assignment("mcp-health/b", 0), assignment("mcp-health/c", 200)];
        let cases = [
            ("three resources", "17", &anys[..], "42"),
            ("no resource", "3", &anys[..0], "1"),
            ("empty strings are omitted", "", &anys[..1], ""),
        ];
        for (case, version, resources, nonce) in cases {
            let ours = DiscoveryResponse {
                version_info: version.into(),
                resources: resources.iter().map(SharedAny::new).collect(),
                type_url: crate::xds::EDS_TYPE.into(),
                nonce: nonce.into(),
            };
            let theirs = envoy::DiscoveryResponse {
                version_info: version.into(),
                resources: resources.to_vec(),
                type_url: crate::xds::EDS_TYPE.into(),
                nonce: nonce.into(),
                ..Default::default()
            };
            let bytes = message(&ours.grpc_frames());
            assert_eq!(bytes, theirs.encode_to_vec(), "{case}");
            assert_eq!(envoy::DiscoveryResponse::decode(bytes.as_slice()).unwrap(), theirs, "{case}");
        }
    }

    #[test]
    fn delta_frames_are_the_bytes_prost_writes_for_envoys_delta_discovery_response() {
        let anys = [assignment("mcp-health/a", 3), assignment("mcp-health/b", 150)];
        let cases: [(&str, &[usize], &[&str]); 3] = [
            ("resources and removals", &[0, 1], &["mcp-health/gone", "other"]),
            ("removals only", &[], &["mcp-health/gone"]),
            ("one resource", &[1], &[]),
        ];
        for (case, picked, removed) in cases {
            let ours = DeltaDiscoveryResponse {
                system_version_info: "9".into(),
                resources: picked
                    .iter()
                    .map(|i| Resource {
                        name: format!("mcp-health/{i}"),
                        version: i.to_string(),
                        resource: SharedAny::new(&anys[*i]),
                    })
                    .collect(),
                type_url: crate::xds::EDS_TYPE.into(),
                removed_resources: removed.iter().map(|s| s.to_string()).collect(),
                nonce: "7".into(),
            };
            let theirs = envoy::DeltaDiscoveryResponse {
                system_version_info: "9".into(),
                resources: picked
                    .iter()
                    .map(|i| envoy::Resource {
                        name: format!("mcp-health/{i}"),
                        version: i.to_string(),
                        resource: Some(anys[*i].clone()),
                        ..Default::default()
                    })
                    .collect(),
                type_url: crate::xds::EDS_TYPE.into(),
                removed_resources: removed.iter().map(|s| s.to_string()).collect(),
                nonce: "7".into(),
                ..Default::default()
            };
            let bytes = message(&ours.grpc_frames());
            assert_eq!(bytes, theirs.encode_to_vec(), "{case}");
            assert_eq!(envoy::DeltaDiscoveryResponse::decode(bytes.as_slice()).unwrap(), theirs, "{case}");
        }
    }

    #[test]
    fn a_shared_any_keeps_the_any() {
        let any = assignment("mcp-health/a", 4);
        let shared = SharedAny::new(&any);
        assert_eq!(shared.to_any(), any);
        assert_eq!(shared.value(), any.value.as_slice());
    }

    /// Two streams' responses carry the catalog's buffer itself, frame for frame.
    #[tokio::test]
    async fn two_streams_send_the_same_resource_buffer() {
        let shared = SharedAny::new(&assignment("mcp-health/a", 50));
        let response = |nonce: &str| DiscoveryResponse {
            version_info: "1".into(),
            resources: vec![shared.clone()],
            type_url: crate::xds::EDS_TYPE.into(),
            nonce: nonce.into(),
        };
        let mut sent = Vec::new();
        for nonce in ["1", "2"] {
            let (tx, rx) = mpsc::channel(1);
            tx.send(Ok(response(nonce))).await.unwrap();
            drop(tx);
            let mut body = GrpcBody::new(rx);
            let mut data = Vec::new();
            let mut trailers = None;
            while let Some(frame) = body.frame().await {
                match frame.unwrap().into_data() {
                    Ok(d) => data.push(d),
                    Err(f) => trailers = f.into_trailers().ok(),
                }
            }
            assert_eq!(trailers.unwrap().get("grpc-status").unwrap(), "0");
            let resource = data
                .iter()
                .find(|d| d.len() == shared.field().len())
                .expect("the resource is one frame")
                .clone();
            sent.push(resource);
            // The frames decode as envoy's response, with the resource in it.
            let decoded = envoy::DiscoveryResponse::decode(message(&data).as_slice()).unwrap();
            assert_eq!(decoded.resources, [shared.to_any()]);
        }
        assert_eq!(sent[0].as_ptr(), shared.field().as_ptr(), "stream 1 sends the catalog's buffer");
        assert_eq!(sent[1].as_ptr(), shared.field().as_ptr(), "stream 2 sends the catalog's buffer");
    }

    #[tokio::test]
    async fn an_error_ends_the_body_with_its_status() {
        let (tx, rx) = mpsc::channel::<Result<DiscoveryResponse, Status>>(1);
        tx.send(Err(Status::invalid_argument("type_url is required"))).await.unwrap();
        let mut body = GrpcBody::new(rx);
        let frame = body.frame().await.unwrap().unwrap();
        let trailers = frame.into_trailers().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "3");
        assert!(body.frame().await.is_none());
    }
}
