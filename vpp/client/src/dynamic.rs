//! Messages by name, with values as JSON: for tools, tests against other implementations
//! (the vpp_papi conformance test), and debugging. The typed API in [`crate::api`] is what
//! programs should use.

pub use crate::message::{DynamicError, Header, MessageInfo};

/// Every message this crate knows, by VPP name.
pub fn message_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| crate::api::MESSAGES.iter().map(|m| m.name).collect())
}

/// The message type named `message`.
pub fn lookup(message: &str) -> Result<&'static MessageInfo, DynamicError> {
    crate::api::MESSAGES
        .iter()
        .find(|m| m.name == message)
        .ok_or_else(|| DynamicError::Unknown(message.to_owned()))
}

/// The whole message (starting with its id) from JSON fields named as VPP names them.
pub fn encode_json(
    message: &str,
    header: &Header,
    fields: &serde_json::Value,
) -> Result<Vec<u8>, DynamicError> {
    lookup(message)?.encode_json(header, fields)
}

/// A whole message decoded to its header and JSON fields.
pub fn decode_json(
    message: &str,
    bytes: &[u8],
) -> Result<(Header, serde_json::Value), DynamicError> {
    lookup(message)?.decode_json(bytes)
}
