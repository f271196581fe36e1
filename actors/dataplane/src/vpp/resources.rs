//! What one VPP can hold, and what a Request is told when it holds no more: the ring each
//! veth + af_packet end gets, the ceiling on this node's vWires in one VPP, and the
//! diagnosis of a create that VPP refused for want of a resource.
//!
//! Measured on VPP 26.06 with the shipped startup.conf (`nsm bench vpp-capacity`):
//!
//! - **Buffers**: no end of ours holds buffers of VPP's pool. A master memif copies into
//!   buffers as packets arrive; its rings and their buffers are the workload's (the slave
//!   chooses ring and buffer size; a ring size asked of the master is ignored). An af_packet
//!   end's rings are kernel memory mapped into VPP, locked: 2 × frame size × frames.
//! - **File descriptors**: an af_packet end takes one; a memif end one listening socket,
//!   and four more once its workload connects (connection, shared memory, two interrupt
//!   eventfds). VPP keeps the open-files limit it was started with (systemd's default soft
//!   limit is 1024). Out of them, `memif_create_v2` fails with SYSCALL_ERROR_4 (-14) and
//!   `af_packet_create_v3` with SYSCALL_ERROR_1 (-11), leaving nothing behind; a memif whose
//!   workload connects after that never comes up (VPP logs `accept: Too many open files`).
//! - **Stats segment** (`statseg { size }`, 32 MiB by default): VPP keeps every interface's
//!   counters and name there and aborts (`Out-of-memory, calling os_panic()`) when it is
//!   full, at 6,000 to 7,000 interfaces. An abort is no refusal a Request could report, and
//!   the runtime would re-create everything after the restart, so [`VppConfig::max_vwires`]
//!   refuses before: [`DEFAULT_MAX_VWIRES`] leaves room for the operator's own interfaces.
//!
//! [`VppConfig::max_vwires`]: super::VppConfig::max_vwires

use std::path::Path;

use nsm_vpp::client::Error as VppError;

use super::{Vpp, vpp_error};
use crate::contract::DataplaneError;

/// vWires of this node one VPP holds at most, by default: 4,000 interfaces, well below the
/// 6,000 at which the default 32 MiB stats segment runs out.
pub const DEFAULT_MAX_VWIRES: u32 = 2_000;

/// The memory a page-aligned packet ring block needs: the kernel refuses other sizes.
const PAGE_SIZE: u32 = 4096;
/// The kernel's alignment of frames in a packet ring (`TPACKET_ALIGNMENT`).
const FRAME_ALIGNMENT: u32 = 16;

/// The packet rings of one veth + af_packet end (TPACKET_V2, one block per direction):
/// what one end costs in locked kernel memory, and how big a frame it takes unbroken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketRing {
    /// Bytes per frame: the largest frame the end carries, plus the ring's 64-byte header.
    pub frame_size: u32,
    /// Frames in each direction's ring: how many packets may wait for VPP or the kernel.
    pub frames: u32,
}

impl Default for AfPacketRing {
    /// 10,240-byte frames (jumbo frames pass), 32 per ring: 640 KiB per end.
    fn default() -> Self {
        Self {
            frame_size: 10_240,
            frames: 32,
        }
    }
}

/// Why an af_packet ring setting cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error(
        "af_packet frame size {0}: must be a multiple of 16 from {MIN_FRAME_SIZE} to {MAX_FRAME_SIZE}"
    )]
    FrameSize(u32),
    #[error("af_packet frames {0}: must be from 1 to {MAX_FRAMES}")]
    Frames(u32),
    #[error(
        "af_packet frame size {frame_size} × frames {frames} = {bytes} bytes: the kernel takes rings of whole 4096-byte pages only; choose frames so that the product is a multiple of 4096"
    )]
    NotPages {
        frame_size: u32,
        frames: u32,
        bytes: u64,
    },
}

/// An Ethernet frame of 1,500 bytes of payload with the ring's header fits.
pub const MIN_FRAME_SIZE: u32 = 2048;
/// VPP's own largest default (a 64 KiB segmentation-offload packet): more buys nothing.
pub const MAX_FRAME_SIZE: u32 = 2048 * 33;
/// A ring of more frames is more locked memory than any one end needs.
pub const MAX_FRAMES: u32 = 8192;

impl AfPacketRing {
    /// Checks what the kernel and VPP accept.
    pub fn check(self) -> Result<Self, RingError> {
        let Self { frame_size, frames } = self;
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&frame_size)
            || frame_size % FRAME_ALIGNMENT != 0
        {
            return Err(RingError::FrameSize(frame_size));
        }
        if !(1..=MAX_FRAMES).contains(&frames) {
            return Err(RingError::Frames(frames));
        }
        let bytes = u64::from(frame_size) * u64::from(frames);
        if bytes % u64::from(PAGE_SIZE) != 0 {
            return Err(RingError::NotPages {
                frame_size,
                frames,
                bytes,
            });
        }
        Ok(self)
    }

    /// Locked kernel memory one end takes: a ring each way.
    pub fn bytes_per_end(self) -> u64 {
        2 * u64::from(self.frame_size) * u64::from(self.frames)
    }
}

/// Refuses a new vWire when this node already holds `held` in VPP and `max` is the ceiling.
pub(crate) fn check_ceiling(held: usize, max: u32) -> Result<(), DataplaneError> {
    if held < max as usize {
        return Ok(());
    }
    Err(DataplaneError::Failed {
        dataplane: Vpp::NAME,
        reason: format!(
            "VPP holds {held} vWires of this node, the most --vpp-max-vwires ({max}) allows: \
             VPP keeps every interface's counters in its stats segment and aborts when it is \
             full (at about 6,000 interfaces with the default 32 MiB); to hold more, raise \
             statseg {{ size }} in VPP's startup.conf and --vpp-max-vwires with it"
        ),
    })
}

/// What was being made when VPP refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Creating<'a> {
    /// A memif end's listening socket or interface, on this socket file.
    Memif { socket_file: &'a str },
    /// A veth + af_packet end on this host interface, with this ring.
    AfPacket {
        host_name: &'a str,
        ring: AfPacketRing,
    },
}

/// VPP's `VNET_API_ERROR_SYSCALL_ERROR_4`: memif's answer when it cannot bind its socket.
const SYSCALL_ERROR_4: i32 = -14;

/// File descriptors VPP needs free to make an end and keep it once its workload is
/// connected: a memif's listener and the 4 of its connection; an af_packet end's packet
/// socket, and the netlink socket VPP opens for a moment while making it (counted after the
/// refusal, that one is closed again, so without it a VPP one short looks fine).
const MEMIF_FDS: u64 = 5;
const AF_PACKET_FDS: u64 = 2;

/// The data plane's error for a create VPP refused. A system-call failure there means VPP
/// could not open a socket or map a ring: say which resource, and, when VPP's own counts can
/// be read (`/proc/<pid>` of the API socket's peer), whether it ran out of file descriptors.
pub(crate) fn refused(
    error: VppError,
    creating: Creating<'_>,
    vpp_pid: Option<u32>,
) -> DataplaneError {
    let VppError::Vpp { retval, .. } = &error else {
        return vpp_error(error);
    };
    let syscall_failed = match creating {
        Creating::Memif { .. } => *retval == SYSCALL_ERROR_4,
        Creating::AfPacket { .. } => *retval == nsm_vpp::retval::SYSCALL_ERROR_1,
    };
    if !syscall_failed {
        return vpp_error(error);
    }
    let fds = vpp_pid.and_then(open_files);
    explain(&error, creating, fds)
}

/// The message for a system-call failure, given VPP's file descriptors if known.
fn explain(error: &VppError, creating: Creating<'_>, fds: Option<OpenFiles>) -> DataplaneError {
    let needed = match creating {
        Creating::Memif { .. } => MEMIF_FDS,
        Creating::AfPacket { .. } => AF_PACKET_FDS,
    };
    let fds_note = match fds {
        Some(fds) if fds.open + needed > fds.limit => {
            // VPP is out of them, or so close that the end cannot be whole.
            return DataplaneError::Failed {
                dataplane: Vpp::NAME,
                reason: format!(
                    "{error}: VPP has run out of file descriptors ({} of its {} are open; {}). \
                     Raise VPP's open-files limit (LimitNOFILE= in vpp.service; systemd's \
                     default is 1024) or put fewer vWires on this VPP",
                    // A limit lowered below what is open leaves more open than the limit.
                    fds.open.min(fds.limit),
                    fds.limit,
                    what_an_end_takes(creating),
                ),
            };
        }
        Some(fds) => format!(
            "VPP has {} of its {} file descriptors open",
            fds.open, fds.limit
        ),
        None => "VPP's file descriptors cannot be counted from here".to_owned(),
    };
    let reason = match creating {
        Creating::Memif { socket_file } => format!(
            "{error}: VPP could not bind the memif socket {socket_file}: another memif may \
             listen on it, VPP may lack the right to make it in its folder, or file \
             descriptors ({}; {fds_note}); VPP's log names the cause",
            what_an_end_takes(creating)
        ),
        Creating::AfPacket { host_name, ring } => format!(
            "{error}: VPP could not open a packet socket on {host_name} or map its rings \
             ({} bytes of locked memory; lower --vpp-af-packet-frames or \
             --vpp-af-packet-frame-size to take less), or ran out of file descriptors ({}; \
             {fds_note}); VPP's log names the cause",
            ring.bytes_per_end(),
            what_an_end_takes(creating)
        ),
    };
    DataplaneError::Failed {
        dataplane: Vpp::NAME,
        reason,
    }
}

fn what_an_end_takes(creating: Creating<'_>) -> &'static str {
    match creating {
        Creating::Memif { .. } => {
            "a memif end takes 1 file descriptor, and 4 more once its workload connects"
        }
        Creating::AfPacket { .. } => {
            "an af_packet end takes 1 file descriptor, and VPP 1 more while making it"
        }
    }
}

/// A process's open file descriptors and its open-files (soft) limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub open: u64,
    pub limit: u64,
}

/// VPP's, from `/proc/<pid>` (the pid of its API socket's peer, [`Client::peer_pid`]);
/// `None` when this process may not look (another host's VPP, another user's).
///
/// [`Client::peer_pid`]: nsm_vpp::client::Client::peer_pid
pub fn open_files(pid: u32) -> Option<OpenFiles> {
    open_files_in(Path::new("/proc"), pid)
}

fn open_files_in(proc: &Path, pid: u32) -> Option<OpenFiles> {
    let dir = proc.join(pid.to_string());
    let limits = std::fs::read_to_string(dir.join("limits")).ok()?;
    let limit = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let open = std::fs::read_dir(dir.join("fd")).ok()?.count() as u64;
    Some(OpenFiles { open, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ring_is_accepted_and_takes_640_kib_per_end() {
        let ring = AfPacketRing::default().check().unwrap();
        assert_eq!(ring.bytes_per_end(), 640 * 1024);
    }

    #[test]
    fn rings_the_kernel_or_vpp_would_refuse_are_refused_naming_the_setting() {
        for (frame_size, frames, expected) in [
            (1024, 32, RingError::FrameSize(1024)),
            (2050, 32, RingError::FrameSize(2050)),
            (2048 * 34, 32, RingError::FrameSize(2048 * 34)),
            (2048, 0, RingError::Frames(0)),
            (2048, MAX_FRAMES + 1, RingError::Frames(MAX_FRAMES + 1)),
            (
                10_240,
                3,
                RingError::NotPages {
                    frame_size: 10_240,
                    frames: 3,
                    bytes: 30_720,
                },
            ),
        ] {
            let ring = AfPacketRing { frame_size, frames };
            assert_eq!(ring.check(), Err(expected), "{ring:?}");
        }
        assert!(
            AfPacketRing {
                frame_size: 2048,
                frames: 2
            }
            .check()
            .is_ok()
        );
    }

    #[test]
    fn the_ceiling_refuses_at_max_and_names_the_setting_and_the_stats_segment() {
        assert!(check_ceiling(1999, 2000).is_ok());
        let refused = check_ceiling(2000, 2000).unwrap_err().to_string();
        assert!(refused.contains("--vpp-max-vwires (2000)"), "{refused}");
        assert!(refused.contains("stats segment"), "{refused}");
    }

    #[test]
    fn this_processs_file_descriptors_are_read_from_proc() {
        let fds = open_files(std::process::id()).unwrap();
        assert!(fds.open >= 3 && fds.limit >= fds.open, "{fds:?}");
        assert_eq!(open_files_in(Path::new("/nonexistent"), 1), None);
    }

    fn syscall_error(message: &'static str, retval: i32) -> VppError {
        VppError::Vpp {
            message,
            retval,
            name: nsm_vpp::retval::name(retval),
        }
    }

    #[test]
    fn a_memif_refused_by_a_vpp_out_of_file_descriptors_says_so_and_what_to_raise() {
        let error = syscall_error("memif_create_v2", -14);
        let creating = Creating::Memif {
            socket_file: "/run/vpp/nsm/x-client.sock",
        };
        let full = OpenFiles {
            open: 1021,
            limit: 1024,
        };
        let message = explain(&error, creating, Some(full)).to_string();
        for part in [
            "run out of file descriptors (1021 of its 1024 are open",
            "4 more once its workload connects",
            "LimitNOFILE",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        let unknown = explain(&error, creating, None).to_string();
        for part in [
            "/run/vpp/nsm/x-client.sock",
            "cannot be counted",
            "SYSCALL_ERROR_4",
        ] {
            assert!(unknown.contains(part), "{part}: {unknown}");
        }
    }

    #[test]
    fn a_refused_af_packet_names_memory_and_file_descriptors() {
        let creating = Creating::AfPacket {
            host_name: "vpp-1234abcd-c",
            ring: AfPacketRing::default(),
        };
        let error = syscall_error("af_packet_create_v3", -11);
        // This process stands in for VPP: it has descriptors to spare.
        let error = refused(error, creating, Some(std::process::id())).to_string();
        for part in [
            "655360 bytes of locked memory",
            "--vpp-af-packet-frames",
            "file descriptors open",
        ] {
            assert!(error.contains(part), "{part}: {error}");
        }
        // One short: the end's socket would fit, the netlink socket VPP opens to make it not.
        let one_short = OpenFiles {
            open: 17,
            limit: 18,
        };
        let message = explain(
            &syscall_error("af_packet_create_v3", -11),
            creating,
            Some(one_short),
        )
        .to_string();
        assert!(
            message.contains("run out of file descriptors (17 of its 18"),
            "{message}"
        );
        let other = refused(syscall_error("af_packet_create_v3", -2), creating, None).to_string();
        assert!(!other.contains("file descriptors"), "{other}");
    }
}
