//! The client's errors: one variant per way a call can fail, each saying what to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::codec::{DecodeError, EncodeError};

/// A message whose CRC differs between this crate and the VPP it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrcMismatch {
    pub message: &'static str,
    /// The CRC this crate was generated with.
    pub ours: u32,
    /// The CRC in VPP's message table.
    pub vpp: u32,
}

/// Why a call to VPP failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API socket cannot be reached: is VPP running, is `socksvr { socket-name }` this
    /// path, may this process open it?
    #[error("cannot connect to VPP's API socket {path}: {cause}")]
    Connect {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// VPP refused the session or answered the handshake with something else.
    #[error("VPP refused the API session: {0}")]
    Handshake(String),
    /// The running VPP defines these messages differently from the VPP this crate was built
    /// for (26.06): talking to it would corrupt both sides. Use a matching VPP or rebuild.
    #[error(
        "VPP's API differs from the one nsm-vpp was built for (VPP 26.06) in {} message(s): {}",
        .0.len(),
        .0.iter().map(|m| format!("{} (ours {:08x}, VPP {:08x})", m.message, m.ours, m.vpp)).collect::<Vec<_>>().join(", ")
    )]
    CrcMismatch(Vec<CrcMismatch>),
    /// VPP does not have these messages at all: the plugin that provides them is not loaded
    /// (`plugins { plugin X_plugin.so { enable } }`), or this VPP is too old.
    #[error("VPP does not provide {}: is the plugin that defines it loaded?", .0.join(", "))]
    Missing(Vec<String>),
    /// VPP ran the request and refused it: `retval` is VPP's error number, `name` its name.
    #[error("VPP refused {message}: {name} ({retval})")]
    Vpp {
        message: &'static str,
        retval: i32,
        name: &'static str,
    },
    /// No answer in time. VPP drops some requests silently (see its log: `vppctl show log`);
    /// the connection is still usable.
    #[error("VPP did not answer {message} within {after:?}")]
    Timeout {
        message: &'static str,
        after: Duration,
    },
    /// The connection is gone (VPP stopped or restarted); connect again.
    #[error("the connection to VPP is closed: {reason}")]
    Closed { reason: String },
    /// VPP answered with another message than the one the request expects.
    #[error("VPP answered {message} with message id {got} ({got_name}), expected {expected}")]
    Unexpected {
        message: &'static str,
        expected: &'static str,
        got: u16,
        got_name: String,
    },
    /// A value this crate cannot put on the wire.
    #[error("cannot encode {message}: {cause}")]
    Encode {
        message: &'static str,
        cause: EncodeError,
    },
    /// An event subscriber read too slowly and the connection dropped `missed` events of
    /// this type rather than hold back the replies behind them: what they said must be read
    /// afresh (a dump). The stream goes on with the next event still buffered.
    #[error("{missed} {event} event(s) were missed: the subscriber fell behind")]
    EventsMissed { event: &'static str, missed: u64 },
    /// VPP's reply does not decode as the message it should be.
    #[error("cannot decode VPP's {message}: {cause}")]
    Decode {
        message: &'static str,
        cause: DecodeError,
    },
}
