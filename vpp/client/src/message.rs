//! What every VPP message is: a name and CRC (together the key of VPP's message table), a
//! header shape, a body, and for requests the reply they get. The message types themselves
//! are generated in [`crate::api`]; this module owns the traits they implement and the
//! framing of a whole message (id, header fields, body).
//!
//! A message on the wire starts with its u16 id (dynamic, from VPP's table), then, by shape,
//! `u32 client_index` and/or `u32 context`, then the body. Requests carry both, replies and
//! dump details only the context, events only the client index.

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, EncodeError, Reader};

/// Which header fields follow a message's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub client_index: bool,
    pub context: bool,
}

impl Shape {
    /// Bytes from the start of the message to its body.
    pub const fn header_len(self) -> usize {
        2 + 4 * (self.client_index as usize) + 4 * (self.context as usize)
    }

    /// Where the context sits, if the shape has one.
    pub const fn context_offset(self) -> Option<usize> {
        if self.context {
            Some(2 + 4 * (self.client_index as usize))
        } else {
            None
        }
    }
}

/// The header values of one message. Fields its shape lacks are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    pub msg_id: u16,
    #[serde(default)]
    pub client_index: u32,
    #[serde(default)]
    pub context: u32,
}

/// A VPP message type.
pub trait Message:
    Encode
    + Decode
    + Clone
    + fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// VPP's name, e.g. `sw_interface_dump`.
    const NAME: &'static str;
    /// The CRC of its definition; VPP's table names the message `NAME_crc`.
    const CRC: u32;
    const SHAPE: Shape;

    /// The reply's `retval`, for replies that have one (0 is success).
    fn retval(&self) -> Option<i32> {
        None
    }
}

/// A request answered by exactly one reply.
pub trait Request: Message {
    type Reply: Message;
}

/// A dump answered by zero or more details, ended by VPP's reply to a `control_ping`.
pub trait Dump: Message {
    type Details: Message;
}

/// A message VPP sends unasked to subscribers.
pub trait Event: Message {}

/// The key of a message in VPP's table: `name_crc` with the CRC as 8 lower-case hex digits.
pub fn name_crc(name: &str, crc: u32) -> String {
    format!("{name}_{crc:08x}")
}

/// The whole message: id, the header fields of its shape, body.
pub fn encode<M: Message>(message: &M, header: Header) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    header.msg_id.encode(&mut out)?;
    if M::SHAPE.client_index {
        header.client_index.encode(&mut out)?;
    }
    if M::SHAPE.context {
        header.context.encode(&mut out)?;
    }
    message.encode(&mut out)?;
    Ok(out)
}

/// A whole message of type `M`. Bytes after the body are ignored, as VPP's own clients do.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<(Header, M), DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut header = Header {
        msg_id: u16::decode(&mut reader)?,
        ..Header::default()
    };
    if M::SHAPE.client_index {
        header.client_index = u32::decode(&mut reader)?;
    }
    if M::SHAPE.context {
        header.context = u32::decode(&mut reader)?;
    }
    let message = M::decode(&mut reader)?;
    Ok((header, message))
}

/// The id a message starts with, if it is long enough to have one.
pub fn id_of(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Why a message given by name could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DynamicError {
    /// This crate has no message of that name.
    #[error("no message named {0:?} in this crate's definitions")]
    Unknown(String),
    /// The JSON does not describe the message (a missing or misspelt field, a wrong type).
    #[error("{message}: {source}")]
    Json {
        message: &'static str,
        source: serde_json::Error,
    },
    #[error("{message}: {source}")]
    Encode {
        message: &'static str,
        source: EncodeError,
    },
    #[error("{message}: {source}")]
    Decode {
        message: &'static str,
        source: DecodeError,
    },
}

type EncodeJson = fn(&Header, &serde_json::Value) -> Result<Vec<u8>, DynamicError>;
type DecodeJson = fn(&[u8]) -> Result<(Header, serde_json::Value), DynamicError>;

/// A message type as a value: its name, CRC and JSON codec.
#[derive(Clone, Copy)]
pub struct MessageInfo {
    pub name: &'static str,
    pub crc: u32,
    pub shape: Shape,
    encode_json: EncodeJson,
    decode_json: DecodeJson,
}

impl fmt::Debug for MessageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", name_crc(self.name, self.crc))
    }
}

impl MessageInfo {
    pub const fn of<M: Message>() -> Self {
        Self {
            name: M::NAME,
            crc: M::CRC,
            shape: M::SHAPE,
            encode_json: encode_json::<M>,
            decode_json: decode_json::<M>,
        }
    }

    /// The message described as JSON (field names as VPP spells them), encoded.
    pub fn encode_json(
        &self,
        header: &Header,
        fields: &serde_json::Value,
    ) -> Result<Vec<u8>, DynamicError> {
        (self.encode_json)(header, fields)
    }

    /// The message decoded, as JSON.
    pub fn decode_json(&self, bytes: &[u8]) -> Result<(Header, serde_json::Value), DynamicError> {
        (self.decode_json)(bytes)
    }
}

fn encode_json<M: Message>(
    header: &Header,
    fields: &serde_json::Value,
) -> Result<Vec<u8>, DynamicError> {
    let message: M =
        serde_json::from_value(fields.clone()).map_err(|source| DynamicError::Json {
            message: M::NAME,
            source,
        })?;
    encode(&message, *header).map_err(|source| DynamicError::Encode {
        message: M::NAME,
        source,
    })
}

fn decode_json<M: Message>(bytes: &[u8]) -> Result<(Header, serde_json::Value), DynamicError> {
    let (header, message) = decode::<M>(bytes).map_err(|source| DynamicError::Decode {
        message: M::NAME,
        source,
    })?;
    let value = serde_json::to_value(&message).map_err(|source| DynamicError::Json {
        message: M::NAME,
        source,
    })?;
    Ok((header, value))
}
