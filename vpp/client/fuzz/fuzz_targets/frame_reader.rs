//! Fuzz target `frame_reader` (this file owns it): the input, less its first byte, is a byte
//! stream from VPP's socket; the first byte sets how many bytes a trickling reader hands out
//! per read.
//!
//! Checked for every input:
//! - `split_frames` never panics; what it returns re-frames (with `framed`) to the bytes it
//!   consumed, up to the 12 header bytes VPP ignores, and what it leaves is not a whole frame;
//! - a synchronous loop of `read_frame` (polled once per frame with a no-op waker: readers
//!   over memory are always ready) over the whole stream, and over the same stream handed
//!   out a few bytes at a time, never panics and reads exactly the frames `split_frames`
//!   finds, then ends as the stream does (clean, cut, empty frame, or too long);
//! - at an impossible length it stops right after the header. Run with
//!   `-malloc_limit_mb=64` (README.md): libFuzzer then reports any single allocation larger
//!   than `MAX_FRAME` (64 MiB) as a crash, so `read_frame` provably never allocates beyond it.

#![no_main]

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use nsm_vpp::frame::{self, FrameError, HEADER_LEN};
use tokio::io::{AsyncRead, ReadBuf};

fn poll_now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a reader over memory never waits"),
    }
}

fn read_all<R: AsyncRead + Unpin>(reader: &mut R) -> (Vec<Vec<u8>>, FrameError) {
    let mut messages = Vec::new();
    loop {
        match poll_now(frame::read_frame(reader)) {
            Ok(message) => messages.push(message),
            Err(error) => return (messages, error),
        }
    }
}

struct Trickle<'a> {
    data: &'a [u8],
    size: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = this.size.min(buf.remaining()).min(this.data.len());
        let (now, later) = this.data.split_at(size);
        buf.put_slice(now);
        this.data = later;
        Poll::Ready(Ok(()))
    }
}

/// The end a reader must report after the whole frames `split_frames` took.
fn check_end(stream: &[u8], split: &Result<(Vec<&[u8]>, usize), FrameError>, end: &FrameError) {
    match (split, end) {
        (Err(FrameError::Empty), FrameError::Empty) => {}
        (Err(FrameError::TooLong(n)), FrameError::TooLong(m)) => assert_eq!(n, m),
        (Ok((_, used)), FrameError::Closed { mid_frame }) => {
            assert_eq!(*mid_frame, *used < stream.len(), "mid_frame wrong");
        }
        (split, end) => panic!("split_frames gave {split:?}, the reader ended with {end:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };

    let split = frame::split_frames(stream);
    if let Ok((messages, used)) = &split {
        let reframed: Vec<u8> = messages.iter().flat_map(|m| frame::framed(m)).collect();
        let mut consumed = stream[..*used].to_vec();
        let mut at = 0;
        for message in messages {
            consumed[at..at + 8].fill(0);
            consumed[at + 12..at + HEADER_LEN].fill(0);
            at += HEADER_LEN + message.len();
        }
        assert_eq!(
            reframed, consumed,
            "re-framing differs from the consumed bytes"
        );
        let rest = &stream[*used..];
        if let Some(header) = rest.first_chunk::<HEADER_LEN>() {
            let len = frame::announced_len(header).expect("a valid length, or split would fail");
            assert!(
                rest.len() - HEADER_LEN < len,
                "a whole frame was left behind"
            );
        }
    }
    // The frames before a failing header are not returned by split_frames; the reader
    // reads them first.
    let whole_frames =
        |messages: &[Vec<u8>]| -> usize { messages.iter().map(|m| HEADER_LEN + m.len()).sum() };

    let mut whole = stream;
    let (messages, end) = read_all(&mut whole);
    if let Ok((split_messages, used)) = &split {
        assert_eq!(
            &messages, split_messages,
            "read_frame and split_frames disagree"
        );
        assert_eq!(whole_frames(&messages), *used);
    } else {
        // Stopped right after the failing header, having read the whole frames before it.
        let before = whole_frames(&messages);
        assert_eq!(whole.len(), stream.len() - before - HEADER_LEN);
        let (split_messages, used) = frame::split_frames(&stream[..before]).expect("whole frames");
        assert_eq!(split_messages, messages);
        assert_eq!(used, before);
    }
    check_end(stream, &split, &end);

    let mut trickle = Trickle {
        data: stream,
        size: usize::from(first % 32) + 1,
    };
    let (trickled, trickle_end) = read_all(&mut trickle);
    assert_eq!(trickled, messages, "read in pieces, the frames differ");
    check_end(stream, &split, &trickle_end);
});
