//! The codec of every gRPC server this crate generates: protobuf, as `tonic_prost`'s, except
//! that a request that is not valid protobuf is the caller's fault.
//!
//! `tonic_prost::ProstCodec` answers a body it cannot decode with `INTERNAL`, which is right
//! for a client reading a reply (the peer broke the protocol) but tells a caller whose
//! request was garbage that the server failed. [`ServerCodec`] decodes requests itself and
//! answers `INVALID_ARGUMENT` ("the request is not a valid NetworkServiceRequest: ..."); it
//! encodes replies exactly as `ProstCodec` does. `build.rs` generates the servers with it
//! and the clients with `ProstCodec`, so a reply that is not valid protobuf stays `INTERNAL`.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes replies of type `T` and decodes requests of type `U`.
#[derive(Debug, Clone)]
pub struct ServerCodec<T, U> {
    replies: ProstCodec<T, U>,
}

impl<T, U> Default for ServerCodec<T, U> {
    fn default() -> Self {
        Self {
            replies: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for ServerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.replies.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            _request: PhantomData,
        }
    }
}

/// Decodes a request of type `U`; bytes that are not one are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _request: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            // prost's message is bounded: fixed words and the names of the fields it was in.
            Status::invalid_argument(format!(
                "the request is not a valid {}: {error}",
                message_name::<U>()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// `NetworkServiceRequest` for `nsm_proto::networkservice::NetworkServiceRequest`.
fn message_name<U>() -> &'static str {
    let path = std::any::type_name::<U>();
    path.rsplit("::").next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use tonic::codec::Streaming;
    use tonic_prost::ProstDecoder;

    use super::*;
    use crate::networkservice::NetworkServiceRequest;

    /// A gRPC frame (uncompressed, 4-byte length) holding `message`.
    fn frame(message: &str) -> String {
        let length = u8::try_from(message.len()).expect("a short test message");
        format!("\0\0\0\0{}{message}", char::from(length))
    }

    async fn decode<D>(decoder: D, body: String) -> Result<Option<D::Item>, Status>
    where
        D: Decoder<Error = Status> + Send + 'static,
        D::Item: Send + 'static,
    {
        let mut stream = Streaming::new_request(decoder, body, None, None);
        stream.message().await
    }

    #[tokio::test]
    async fn a_request_that_is_not_protobuf_is_the_callers_fault() {
        // 'g' is field 12 with wire type 7, which does not exist.
        let decoder = ServerCodec::<(), NetworkServiceRequest>::default().decoder();
        let status = decode(decoder, frame("garbage")).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status
                .message()
                .starts_with("the request is not a valid NetworkServiceRequest: "),
            "{status:?}"
        );
        // What tonic_prost's own decoder (still the clients') says of the same bytes.
        let client = ProstDecoder::<NetworkServiceRequest>::default();
        let status = decode(client, frame("garbage")).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    }

    #[tokio::test]
    async fn a_valid_request_decodes_as_with_prost() {
        let decoder = ServerCodec::<(), NetworkServiceRequest>::default().decoder();
        let empty = decode(decoder, frame("")).await.unwrap();
        assert_eq!(empty, Some(NetworkServiceRequest::default()));
    }
}
