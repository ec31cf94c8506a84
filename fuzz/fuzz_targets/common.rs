//! Shared by the fuzz targets that read bodies: a `reqwest::Response` whose
//! body arrives in chunks of a chosen size, as the network would deliver it,
//! so the probe's own bounded readers (crates/probe/src/body.rs) are what is fuzzed.
#![allow(dead_code)] // each target uses its own part

use bytes::Bytes;
use http_body::Frame;

/// A 200 response with `content_type` whose body is `body` cut into chunks
/// of `chunk` bytes (0: one chunk).
pub fn response(content_type: &str, body: &[u8], chunk: usize) -> reqwest::Response {
    let frame = |c: &[u8]| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::copy_from_slice(c)));
    let frames: Vec<_> = if chunk == 0 {
        vec![frame(body)]
    } else {
        body.chunks(chunk).map(frame).collect()
    };
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(frames)));
    http::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(body)
        .expect("a static status and header are valid")
        .into()
}

/// Two input bytes as a cap in 0..=65535, and the rest.
pub fn cap_and_rest(input: &[u8]) -> Option<(usize, &[u8])> {
    let (cap, rest) = input.split_first_chunk::<2>()?;
    Some((usize::from(u16::from_be_bytes(*cap)), rest))
}
