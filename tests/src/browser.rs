//! Headless Chromium, for tests of what an operator looks at (the page `nsm timeline`
//! writes): render a local HTML file, take the DOM after its scripts ran and a screenshot,
//! and tell a picture from a blank page by counting the screenshot's colours.
//!
//! Debian's `/usr/bin/chromium` (packages `chromium` and `fonts-dejavu-core`, which `.ci/run`
//! installs). Without it a test skips, saying so; with `CI=true` it fails. Each run is
//! offline (no network is needed, and background fetches are off), sandbox-less (CI runs as
//! root), uses a fresh profile, and runs in a process group of its own, which is killed when
//! Chromium exits (its helpers may linger) or after [`TIMEOUT`].
//!
//! The screenshot is decoded by the small PNG reader below (8-bit grey, RGB and RGBA, not
//! interlaced: what Chromium writes). Library code cannot use the `png` crate, which is only
//! a dev-dependency of this crate; `tests/browser_harness.rs` checks this reader against it.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one Chromium run may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Flags for a root, offline, sandbox-less CI machine.
const FLAGS: [&str; 12] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--run-all-compositor-stages-before-draw",
];

/// Chromium, if it is installed.
pub fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    path.is_file().then_some(path)
}

/// Chromium for a test, or `None` after printing why the test skips; panics under CI.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        let why = "the browser tests need Chromium at /usr/bin/chromium \
                   (apt-get install chromium fonts-dejavu-core)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {why}: these tests must run in CI"
        );
        eprintln!("skipped: {why}");
    }
    found
}

/// What Chromium made of a page.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The DOM after the page loaded and its scripts ran (`--dump-dom`).
    pub dom: String,
    /// `<out_dir>/shot.png`.
    pub screenshot: PathBuf,
    /// The screenshot's size, as its PNG header says (expected: the window's).
    pub width: u32,
    pub height: u32,
    /// How many different RGBA values its pixels have: 1 for a blank page.
    pub distinct_colours: usize,
}

/// Renders `html` in a `width`×`height` window: once for the DOM, once for a screenshot
/// written to `<out_dir>/shot.png`.
pub async fn render(
    html: &Path,
    out_dir: &Path,
    width: u32,
    height: u32,
) -> anyhow::Result<Rendered> {
    let chromium = chromium().with_context(|| format!("{CHROMIUM} is not installed"))?;
    let html = std::fs::canonicalize(html).with_context(|| format!("{}", html.display()))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("{}", out_dir.display()))?;
    let url = file_url(&html);
    let window = format!("--window-size={width},{height}");
    let dom = run(&chromium, out_dir, &["--dump-dom", &window, &url]).await?;
    let screenshot = out_dir.join("shot.png");
    let _ = std::fs::remove_file(&screenshot);
    let flag = format!("--screenshot={}", screenshot.display());
    run(&chromium, out_dir, &[&flag, &window, &url]).await?;
    let image = read_png(&screenshot)?;
    Ok(Rendered {
        dom,
        width: image.width,
        height: image.height,
        distinct_colours: image.distinct_colours(),
        screenshot,
    })
}

/// Runs Chromium once with a fresh profile under `out_dir`; returns its stdout.
async fn run(chromium: &Path, out_dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let profile = out_dir.join(format!(
        "chromium-profile-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir(&profile).with_context(|| format!("{}", profile.display()))?;
    let mut child = Command::new(chromium)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", chromium.display()))?;
    let group = child.id();
    let stdout = Collected::start(child.stdout.take());
    let stderr = Collected::start(child.stderr.take());
    let status = tokio::time::timeout(TIMEOUT, child.wait()).await;
    if let Some(group) = group {
        kill_group(group).await;
    }
    let _ = child.kill().await;
    let stdout = stdout.finish().await;
    let stderr = stderr.finish().await;
    let _ = std::fs::remove_dir_all(&profile);
    let failure = match status {
        Ok(Ok(status)) if status.success() => return Ok(String::from_utf8_lossy(&stdout).into()),
        Ok(Ok(status)) => exited(status),
        Ok(Err(e)) => format!("could not be waited for ({e})"),
        Err(_) => format!(
            "did not finish within {} s and was killed",
            TIMEOUT.as_secs()
        ),
    };
    bail!(
        "chromium {} {failure}; its stderr:\n{}",
        args.join(" "),
        tail(&String::from_utf8_lossy(&stderr), 4000)
    )
}

fn exited(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("was killed ({status})"),
    }
}

/// Kills what is left of Chromium's process group (crash handler, zygotes). The group is
/// Chromium's own (`process_group(0)`), so nothing else is in it.
async fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// A pipe read to its end in the background, into a buffer still readable if the reading
/// never ends (a helper that escaped the kill holding the pipe open).
#[derive(Debug)]
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Collected {
    fn start(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let task = pipe.map(|mut pipe| {
            let bytes = Arc::clone(&bytes);
            tokio::spawn(async move {
                let mut chunk = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                    bytes
                        .lock()
                        .expect("not poisoned")
                        .extend_from_slice(&chunk[..n]);
                }
            })
        });
        Self { bytes, task }
    }

    async fn finish(mut self) -> Vec<u8> {
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        std::mem::take(&mut *self.bytes.lock().expect("not poisoned"))
    }
}

/// `file://` and the path, percent-encoded where a URL needs it.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// The last `max` bytes of `text` (on a character boundary), marked when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// A decoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// Four bytes (red, green, blue, alpha) per pixel, row after row.
    pub rgba: Vec<u8>,
}

impl Image {
    /// How many different RGBA values the pixels have.
    pub fn distinct_colours(&self) -> usize {
        let colours: HashSet<&[u8]> = self.rgba.chunks_exact(4).collect();
        colours.len()
    }
}

/// Reads a PNG file (see [`decode_png`]).
pub fn read_png(path: &Path) -> anyhow::Result<Image> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    decode_png(&bytes).with_context(|| format!("{} is not a PNG this reader reads", path.display()))
}

/// Decodes a non-interlaced 8-bit greyscale, grey-alpha, RGB or RGBA PNG. Chunk CRCs and
/// the zlib checksum are not checked: a damaged file still fails, on its structure.
pub fn decode_png(bytes: &[u8]) -> anyhow::Result<Image> {
    let body = bytes
        .strip_prefix(b"\x89PNG\r\n\x1a\n")
        .context("no PNG signature")?;
    let (header, data) = chunks(body)?;
    ensure!(header.len() == 13, "IHDR is {} bytes, not 13", header.len());
    let width = u32::from_be_bytes(header[0..4].try_into()?);
    let height = u32::from_be_bytes(header[4..8].try_into()?);
    let (depth, colour_type, interlace) = (header[8], header[9], header[12]);
    let channels = match colour_type {
        0 => 1,
        2 => 3,
        4 => 2,
        6 => 4,
        other => bail!("colour type {other} is not supported"),
    };
    ensure!(depth == 8, "bit depth {depth} is not supported");
    ensure!(interlace == 0, "interlaced PNGs are not supported");
    ensure!(
        (1..=32_768).contains(&width) && (1..=32_768).contains(&height),
        "{width}×{height} is not a plausible size"
    );
    let stride = width as usize * channels;
    let expected = height as usize * (stride + 1);
    ensure!(
        data.len() > 2 && data[0] & 0x0f == 8 && data[1] & 0x20 == 0,
        "bad zlib header"
    );
    let filtered = inflate(&data[2..], expected)?;
    ensure!(
        filtered.len() == expected,
        "{} bytes of pixels, not {expected}",
        filtered.len()
    );
    let pixels = unfilter(&filtered, stride, channels)?;
    let rgba = pixels
        .chunks_exact(channels)
        .flat_map(|p| match *p {
            [g] => [g, g, g, 255],
            [g, a] => [g, g, g, a],
            [r, g, b] => [r, g, b, 255],
            [r, g, b, a] => [r, g, b, a],
            _ => unreachable!("one to four channels"),
        })
        .collect();
    Ok(Image {
        width,
        height,
        rgba,
    })
}

/// The IHDR chunk's data and all the IDAT chunks' data joined.
fn chunks(mut body: &[u8]) -> anyhow::Result<(&[u8], Vec<u8>)> {
    let (mut header, mut data) = (None, Vec::new());
    loop {
        ensure!(body.len() >= 12, "the file ends inside a chunk");
        let length = u32::from_be_bytes(body[0..4].try_into()?) as usize;
        let kind = &body[4..8];
        ensure!(
            body.len() >= 12 + length,
            "the file ends inside a {kind:?} chunk"
        );
        let content = &body[8..8 + length];
        match kind {
            b"IHDR" => header = Some(content),
            b"IDAT" => data.extend_from_slice(content),
            b"IEND" => break,
            _ => {}
        }
        body = &body[12 + length..];
    }
    Ok((header.context("no IHDR chunk")?, data))
}

/// Undoes PNG's per-row filters (none, sub, up, average, Paeth).
fn unfilter(filtered: &[u8], stride: usize, bpp: usize) -> anyhow::Result<Vec<u8>> {
    let mut pixels = Vec::with_capacity(filtered.len());
    let mut previous = vec![0u8; stride];
    for row in filtered.chunks_exact(stride + 1) {
        let (filter, row) = (row[0], &row[1..]);
        let mut current = row.to_vec();
        for i in 0..stride {
            let left = if i >= bpp { current[i - bpp] } else { 0 };
            let up = previous[i];
            let up_left = if i >= bpp { previous[i - bpp] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                other => bail!("row filter {other} does not exist"),
            };
            current[i] = current[i].wrapping_add(predicted);
        }
        pixels.extend_from_slice(&current);
        previous = current;
    }
    Ok(pixels)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Inflates a raw DEFLATE stream (RFC 1951) of at most `limit` bytes, in the manner of
/// zlib's `puff.c`: simple and slow, which is fine for a test's screenshot.
fn inflate(data: &[u8], limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut bits = Bits {
        data,
        position: 0,
        buffer: 0,
        count: 0,
    };
    let mut out = Vec::with_capacity(limit);
    loop {
        let last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => stored(&mut bits, &mut out, limit)?,
            1 => {
                let (literals, distances) = fixed_codes()?;
                codes(&mut bits, &mut out, limit, &literals, &distances)?;
            }
            2 => {
                let (literals, distances) = dynamic_codes(&mut bits)?;
                codes(&mut bits, &mut out, limit, &literals, &distances)?;
            }
            _ => bail!("deflate block type 3 does not exist"),
        }
        if last {
            return Ok(out);
        }
    }
}

#[derive(Debug)]
struct Bits<'a> {
    data: &'a [u8],
    position: usize,
    buffer: u32,
    count: u32,
}

impl Bits<'_> {
    /// The next `n` (at most 16) bits, least significant first.
    fn take(&mut self, n: u32) -> anyhow::Result<u32> {
        while self.count < n {
            let byte = *self
                .data
                .get(self.position)
                .context("the deflate stream ends early")?;
            self.position += 1;
            self.buffer |= u32::from(byte) << self.count;
            self.count += 8;
        }
        let value = self.buffer & ((1 << n) - 1);
        self.buffer >>= n;
        self.count -= n;
        Ok(value)
    }
}

fn stored(bits: &mut Bits<'_>, out: &mut Vec<u8>, limit: usize) -> anyhow::Result<()> {
    let partial = bits.count % 8;
    bits.take(partial)?;
    let length = bits.take(16)?;
    ensure!(
        bits.take(16)? == !length & 0xffff,
        "stored block length does not check"
    );
    ensure!(
        out.len() + length as usize <= limit,
        "more pixel data than the image holds"
    );
    for _ in 0..length {
        out.push(bits.take(8)? as u8);
    }
    Ok(())
}

/// A canonical Huffman code: how many codes of each length, and the symbols in code order.
#[derive(Debug)]
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> anyhow::Result<Self> {
        let mut counts = [0u16; 16];
        for &length in lengths {
            counts[usize::from(length)] += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &count in &counts[1..] {
            left = (left << 1) - i32::from(count);
            ensure!(left >= 0, "over-subscribed Huffman code");
        }
        let mut offsets = [0u16; 16];
        for length in 1..15 {
            offsets[length + 1] = offsets[length] + counts[length];
        }
        let mut symbols = vec![0; lengths.len()];
        for (symbol, &length) in lengths.iter().enumerate() {
            if length != 0 {
                let offset = &mut offsets[usize::from(length)];
                symbols[usize::from(*offset)] = symbol as u16;
                *offset += 1;
            }
        }
        Ok(Self { counts, symbols })
    }

    fn decode(&self, bits: &mut Bits<'_>) -> anyhow::Result<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for &count in &self.counts[1..] {
            code |= bits.take(1)? as i32;
            let count = i32::from(count);
            if code - count < first {
                return Ok(self.symbols[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        bail!("a Huffman code that is not in the table")
    }
}

fn fixed_codes() -> anyhow::Result<(Huffman, Huffman)> {
    let mut lengths = [8u8; 288];
    lengths[144..256].fill(9);
    lengths[256..280].fill(7);
    Ok((Huffman::new(&lengths)?, Huffman::new(&[5; 30])?))
}

fn dynamic_codes(bits: &mut Bits<'_>) -> anyhow::Result<(Huffman, Huffman)> {
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let literals = bits.take(5)? as usize + 257;
    let distances = bits.take(5)? as usize + 1;
    let code_lengths = bits.take(4)? as usize + 4;
    ensure!(literals <= 286 && distances <= 30, "too many codes");
    let mut lengths = [0u8; 19];
    for &symbol in &ORDER[..code_lengths] {
        lengths[symbol] = bits.take(3)? as u8;
    }
    let lengths_code = Huffman::new(&lengths)?;
    let mut lengths = Vec::with_capacity(literals + distances);
    while lengths.len() < literals + distances {
        let (value, repeat) = match lengths_code.decode(bits)? {
            symbol @ 0..16 => (symbol as u8, 1),
            16 => (
                *lengths.last().context("a repeat with nothing to repeat")?,
                3 + bits.take(2)?,
            ),
            17 => (0, 3 + bits.take(3)?),
            _ => (0, 11 + bits.take(7)?),
        };
        ensure!(
            lengths.len() + repeat as usize <= literals + distances,
            "code lengths overflow"
        );
        lengths.extend(std::iter::repeat_n(value, repeat as usize));
    }
    ensure!(lengths[256] != 0, "no end-of-block code");
    Ok((
        Huffman::new(&lengths[..literals])?,
        Huffman::new(&lengths[literals..])?,
    ))
}

fn codes(
    bits: &mut Bits<'_>,
    out: &mut Vec<u8>,
    limit: usize,
    literals: &Huffman,
    distances: &Huffman,
) -> anyhow::Result<()> {
    const LENGTH_BASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LENGTH_EXTRA: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DISTANCE_BASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DISTANCE_EXTRA: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    loop {
        let symbol = usize::from(literals.decode(bits)?);
        if symbol == 256 {
            return Ok(());
        }
        ensure!(out.len() < limit, "more pixel data than the image holds");
        if symbol < 256 {
            out.push(symbol as u8);
            continue;
        }
        let index = symbol - 257;
        ensure!(index < 29, "length code {symbol} does not exist");
        let length =
            usize::from(LENGTH_BASE[index]) + bits.take(u32::from(LENGTH_EXTRA[index]))? as usize;
        let code = usize::from(distances.decode(bits)?);
        ensure!(code < 30, "distance code {code} does not exist");
        let distance =
            usize::from(DISTANCE_BASE[code]) + bits.take(u32::from(DISTANCE_EXTRA[code]))? as usize;
        ensure!(distance <= out.len(), "a distance before the start");
        ensure!(
            out.len() + length <= limit,
            "more pixel data than the image holds"
        );
        for _ in 0..length {
            out.push(out[out.len() - distance]);
        }
    }
}
