//! The protobuf codec of every generated service and client: tonic-prost's,
//! with a smaller initial encode buffer.
//!
//! tonic gives each response stream an 8 KiB encode buffer that lives as long
//! as the stream. Our streamed messages are a few hundred bytes (a health
//! status is 2), so at 10,000 open watch streams that default alone is about
//! 80 MiB of RSS. A 1 KiB start grows on demand for larger messages (a big
//! group's snapshot) exactly as the default does past 8 KiB.

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Initial encode buffer per call or stream, in bytes.
const ENCODE_BUFFER_BYTES: usize = 1024;
/// tonic's default: a stream yields its encoded bytes past this many.
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// tonic-prost's codec with [`ENCODE_BUFFER_BYTES`]; decoding is unchanged.
#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(ENCODE_BUFFER_BYTES, YIELD_THRESHOLD_BYTES))
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.0.decoder()
    }
}
