//! Tests of the simulator over raw frames: a minimal client here, not the crate's client, so
//! that the simulator is checked against the protocol and not against another
//! implementation of it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use nsm_vpp::api::*;
use nsm_vpp::codec::FixedString;
use nsm_vpp::frame;
use nsm_vpp::message::{self, Dump, Header, Message, Request, name_crc};

use super::{Simulator, SimulatorConfig};

mod devices;
mod events;
mod faults;
mod linux_tap;
mod protocol;

/// How long a test waits for something that should arrive.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test listens to be sure nothing arrives.
const QUIET: Duration = Duration::from_millis(150);
/// The context of the test client's handshake.
const HELLO: u32 = 0x1234;

static SOCKETS: AtomicU32 = AtomicU32::new(0);

fn socket_path() -> PathBuf {
    let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("nsm-vpp-sim-{}-{n}.sock", std::process::id()))
}

fn start() -> Simulator {
    start_with(|_| {})
}

fn start_with(configure: impl FnOnce(&mut SimulatorConfig)) -> Simulator {
    let mut config = SimulatorConfig::new(socket_path());
    configure(&mut config);
    Simulator::start(config).expect("the simulator starts")
}

fn text<const N: usize>(text: &str) -> FixedString<N> {
    FixedString::new(text).expect("fits")
}

/// A client that speaks frames and nothing more.
struct Raw {
    stream: UnixStream,
    handle: u32,
    /// name_crc → id, from the handshake.
    table: HashMap<String, u16>,
    reply: SockclntCreateReply,
    /// The handshake reply as it came.
    hello: Vec<u8>,
}

impl Raw {
    /// Connects and does the handshake (sockclnt_create has the static id 15).
    async fn connect(sim: &Simulator) -> Raw {
        let mut stream = UnixStream::connect(sim.socket_path())
            .await
            .expect("connect");
        let create = SockclntCreate { name: text("raw") };
        let header = Header {
            msg_id: 15,
            client_index: 0,
            context: HELLO,
        };
        let bytes = message::encode(&create, header).expect("encode");
        frame::write_frame(&mut stream, &bytes)
            .await
            .expect("write");
        let hello = tokio::time::timeout(PATIENCE, frame::read_frame(&mut stream))
            .await
            .expect("a handshake reply")
            .expect("a frame");
        let (header, reply) = message::decode::<SockclntCreateReply>(&hello).expect("decode");
        assert_eq!((header.msg_id, header.context), (16, HELLO));
        let table = reply
            .message_table
            .iter()
            .map(|entry| (entry.name.as_str().to_owned(), entry.index))
            .collect();
        Raw {
            stream,
            handle: reply.index,
            table,
            reply,
            hello,
        }
    }

    /// This run's id of a message this crate defines.
    fn id<M: Message>(&self) -> u16 {
        self.table[&name_crc(M::NAME, M::CRC)]
    }

    /// A whole frame for `message`, from `client_index`.
    fn frame_as<M: Message>(&self, message: &M, client_index: u32, context: u32) -> Vec<u8> {
        let header = Header {
            msg_id: self.id::<M>(),
            client_index,
            context,
        };
        frame::framed(&message::encode(message, header).expect("encode"))
    }

    fn frame<M: Message>(&self, message: &M, context: u32) -> Vec<u8> {
        self.frame_as(message, self.handle, context)
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn send<M: Message>(&mut self, message: &M, context: u32) {
        let bytes = self.frame(message, context);
        self.write(&bytes).await;
    }

    async fn recv(&mut self) -> Vec<u8> {
        tokio::time::timeout(PATIENCE, frame::read_frame(&mut self.stream))
            .await
            .expect("a message in time")
            .expect("a frame")
    }

    async fn recv_as<M: Message>(&mut self) -> (Header, M) {
        let bytes = self.recv().await;
        assert_eq!(
            message::id_of(&bytes),
            Some(self.id::<M>()),
            "expected {}",
            M::NAME
        );
        message::decode::<M>(&bytes).expect("decode")
    }

    /// True if nothing arrives for a while.
    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(QUIET, frame::read_frame(&mut self.stream))
            .await
            .is_err()
    }

    /// True if the server closed the socket (after whatever it sent first was read).
    async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(PATIENCE, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    async fn call<M: Request>(&mut self, request: &M) -> M::Reply {
        self.send(request, 77).await;
        let (header, reply) = self.recv_as::<M::Reply>().await;
        assert_eq!(header.context, 77);
        reply
    }

    /// The dump, then a control_ping with the same context; details until its reply.
    async fn dump<M: Dump>(&mut self, request: &M) -> Vec<M::Details> {
        let mut bytes = self.frame(request, 91);
        bytes.extend(self.frame(&ControlPing {}, 91));
        self.write(&bytes).await;
        let mut details = Vec::new();
        loop {
            let bytes = self.recv().await;
            assert_eq!(context_of(&bytes), 91);
            let id = message::id_of(&bytes);
            if id == Some(self.id::<ControlPingReply>()) {
                return details;
            }
            assert_eq!(id, Some(self.id::<M::Details>()));
            details.push(message::decode::<M::Details>(&bytes).expect("decode").1);
        }
    }
}

/// The context of a reply or details message.
fn context_of(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[2..6].try_into().expect("a context"))
}

/// An af_packet create for `host`, as NSM sends it.
fn af_packet(host: &str) -> AfPacketCreateV3 {
    AfPacketCreateV3 {
        mode: AfPacketMode::AF_PACKET_API_MODE_ETHERNET,
        use_random_hw_addr: true,
        host_if_name: text(host),
        flags: AfPacketFlags::AF_PACKET_API_FLAG_VERSION_2,
        ..Default::default()
    }
}

/// Creates an af_packet interface and returns its index.
async fn make_af_packet(client: &mut Raw, host: &str) -> u32 {
    let reply = client.call(&af_packet(host)).await;
    assert_eq!(reply.retval, 0, "af_packet_create_v3 {host}");
    reply.sw_if_index
}

fn admin_up(sw_if_index: u32) -> SwInterfaceSetFlags {
    SwInterfaceSetFlags {
        sw_if_index,
        flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
    }
}
