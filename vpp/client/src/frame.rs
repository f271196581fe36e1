//! The socket transport's framing: every message, both ways, is a 16-byte header (8 bytes
//! VPP ignores, a big-endian u32 length, 4 more ignored bytes) and then that many bytes of
//! message. Writers send a frame in one piece; readers loop until they have all of it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The bytes before each message.
pub const HEADER_LEN: usize = 16;

/// Frames longer than this are refused: VPP's longest reply (the API's JSON) is ~1.5 MB, so
/// a larger length means the stream is out of step, not a big message.
pub const MAX_FRAME: usize = 64 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the socket (cleanly between frames when `mid_frame` is false).
    #[error("the socket was closed{}", if *mid_frame { " in the middle of a message" } else { "" })]
    Closed { mid_frame: bool },
    /// A length no VPP message has: the byte stream is not VPP's framing (or is out of step).
    #[error("frame length {0} is beyond the {MAX_FRAME}-byte limit: not VPP's framing")]
    TooLong(usize),
    /// A frame with no room for a message id.
    #[error("empty frame")]
    Empty,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// The header for a message of `len` bytes (VPP ignores all but the length).
pub fn header(len: usize) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[8..12].copy_from_slice(&(len as u32).to_be_bytes());
    header
}

/// The message length a frame header announces.
pub fn announced_len(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::TooLong(n)),
        n => Ok(n),
    }
}

/// Header and message as one buffer, so that one write sends the frame contiguously.
pub fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + message.len());
    out.extend_from_slice(&header(message.len()));
    out.extend_from_slice(message);
    out
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &[u8],
) -> std::io::Result<()> {
    writer.write_all(&framed(message)).await
}

/// Reads one frame and returns its message.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match reader.read(&mut header[got..]).await? {
            0 => return Err(FrameError::Closed { mid_frame: got > 0 }),
            n => got += n,
        }
    }
    let len = announced_len(&header)?;
    let mut message = vec![0u8; len];
    reader
        .read_exact(&mut message)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Closed { mid_frame: true },
            _ => FrameError::Io(e),
        })?;
    Ok(message)
}

/// Splits complete frames off the front of `buffer` (for callers that read in chunks):
/// each message in order, and how many bytes they took.
pub fn split_frames(buffer: &[u8]) -> Result<(Vec<&[u8]>, usize), FrameError> {
    let mut messages = Vec::new();
    let mut at = 0;
    while buffer.len() - at >= HEADER_LEN {
        let header: &[u8; HEADER_LEN] = buffer[at..at + HEADER_LEN].try_into().expect("16 bytes");
        let len = announced_len(header)?;
        if buffer.len() - at - HEADER_LEN < len {
            break;
        }
        messages.push(&buffer[at + HEADER_LEN..at + HEADER_LEN + len]);
        at += HEADER_LEN + len;
    }
    Ok((messages, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_written_in_pieces_reads_whole() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let bytes = framed(b"\x00\x17abc");
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(5) {
                a.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(read_frame(&mut b).await.unwrap(), b"\x00\x17abc");
        writer.await.unwrap();
        assert!(matches!(
            read_frame(&mut b).await,
            Err(FrameError::Closed { mid_frame: false })
        ));
    }

    #[test]
    fn split_keeps_an_incomplete_tail() {
        let mut buffer = framed(b"\x00\x01");
        buffer.extend_from_slice(&framed(b"\x00\x02xyz")[..10]);
        let (messages, used) = split_frames(&buffer).unwrap();
        assert_eq!(messages, vec![&b"\x00\x01"[..]]);
        assert_eq!(used, HEADER_LEN + 2);
        assert!(matches!(
            split_frames(&header(MAX_FRAME + 1)),
            Err(FrameError::TooLong(_))
        ));
    }
}
