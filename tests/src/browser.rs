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
//! The screenshot is decoded with the `png` crate.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
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
    let why = "the browser tests need Chromium at /usr/bin/chromium \
               (apt-get install chromium fonts-dejavu-core)";
    nsm_test_support::available_or_skip(found.is_some(), why);
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

/// Decodes a PNG of any colour type and bit depth to 8-bit RGBA, with the `png` crate.
pub fn decode_png(bytes: &[u8]) -> anyhow::Result<Image> {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().context("the PNG header")?;
    let mut buffer = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buffer).context("the PNG pixels")?;
    let samples = frame.color_type.samples();
    let rgba = buffer[..frame.buffer_size()]
        .chunks_exact(samples)
        .flat_map(|p| match *p {
            [g] => [g, g, g, 255],
            [g, a] => [g, g, g, a],
            [r, g, b] => [r, g, b, 255],
            [r, g, b, a] => [r, g, b, a],
            _ => unreachable!("normalize_to_color8 yields one to four samples per pixel"),
        })
        .collect();
    Ok(Image {
        width: frame.width,
        height: frame.height,
        rgba,
    })
}
