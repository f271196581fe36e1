//! Private VPP instances for tests: each test starts its own VPP from the unpacked test
//! build that `NSM_TEST_VPP` names (`.ci/run` unpacks `../shared/vpp/` there), in its own
//! runtime folder with its own API socket, CLI socket, stats socket and shared-memory prefix,
//! and stops it and removes the folder when the instance is dropped. Two tests never share a
//! VPP, so they can run at once.
//!
//! The startup configuration is the build's own `startup.conf` with every runtime path moved
//! into the instance's folder (the build's config keeps buffers and heap on 4 KiB pages, so
//! VPP never asks for hugepages; if one did anyway, the count is put back on drop).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The environment variable naming the unpacked VPP build (the folder holding `bin/vpp`).
pub const VPP_ENV: &str = "NSM_TEST_VPP";

/// How long VPP may take to open its API socket, in polls of [`POLL`].
const START_POLLS: u32 = 400;
const POLL: Duration = Duration::from_millis(50);
const HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The unpacked VPP build, if `NSM_TEST_VPP` names one that holds `bin/vpp`.
pub fn build() -> Result<PathBuf, String> {
    let dir = std::env::var_os(VPP_ENV).ok_or_else(|| {
        format!("{VPP_ENV} is not set (unpack ../shared/vpp/ and point it at vpp-26.06/)")
    })?;
    let dir = PathBuf::from(dir);
    if !dir.join("bin/vpp").is_file() {
        return Err(format!("{VPP_ENV}={} holds no bin/vpp", dir.display()));
    }
    Ok(dir)
}

/// The VPP build, or `None` after printing why the test skips (outside CI) — under
/// `CI=true` a missing VPP or missing root fails the test.
pub fn build_or_skip(test: &str) -> Option<PathBuf> {
    let found = build().and_then(|dir| {
        if is_root() {
            Ok(dir)
        } else {
            Err("VPP needs root".to_owned())
        }
    });
    match found {
        Ok(dir) => Some(dir),
        Err(why) => {
            crate::available_or_skip(false, &format!("{test} runs on a real VPP: {why}"));
            None
        }
    }
}

fn is_root() -> bool {
    // The effective uid from /proc, so that this crate needs no libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// One running VPP of a test's own.
#[derive(Debug)]
pub struct VppInstance {
    build: PathBuf,
    name: String,
    run: PathBuf,
    child: Option<Child>,
    hugepages_before: Option<String>,
}

impl VppInstance {
    /// Starts a VPP if the build is there; `None` (after printing why) where the test
    /// skips. Panics if VPP does not start: a broken VPP is never a skip.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let build = build_or_skip(test)?;
        Some(Self::start(&build).unwrap_or_else(|e| panic!("{test}: VPP did not start: {e}")))
    }

    /// Starts a VPP from `build` in a fresh folder of its own.
    pub fn start(build: &Path) -> io::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("nsmt{}x{n}", std::process::id());
        let run = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run)?;
        let mut instance = Self {
            build: build.to_owned(),
            name,
            run,
            child: None,
            hugepages_before: std::fs::read_to_string(HUGEPAGES).ok(),
        };
        instance.launch()?;
        Ok(instance)
    }

    // Blocking on purpose: a test starts its VPP before anything else runs on its runtime,
    // and a plain function serves synchronous and asynchronous tests alike.
    #[allow(clippy::disallowed_methods)]
    fn launch(&mut self) -> io::Result<()> {
        let shipped = std::fs::read_to_string(self.build.join("startup.conf"))?;
        let run = self.run.to_string_lossy();
        let config = shipped
            .replace("/run/vpp", &run)
            .replace("prefix vpp", &format!("prefix {}", self.name))
            // Every instance on core 0 would make two VPPs of one test take turns.
            .replace("cpu { main-core 0 }", "");
        let config_file = self.run.join("startup.conf");
        std::fs::write(&config_file, config)?;
        let _ = std::fs::remove_file(self.api_socket());
        let log = std::fs::File::create(self.run.join("stdout.log"))?;
        let child = Command::new(self.build.join("bin/vpp"))
            .arg("-c")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        for _ in 0..START_POLLS {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(io::Error::other(format!(
                    "VPP exited at start ({status}): {}",
                    self.log_tail()
                )));
            }
            if self.api_socket().exists() && self.cli("show version").is_ok() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(io::Error::other(format!(
            "VPP did not open {} within {:?}: {}",
            self.api_socket().display(),
            POLL * START_POLLS,
            self.log_tail()
        )))
    }

    /// The instance's binary-API socket.
    pub fn api_socket(&self) -> PathBuf {
        self.run.join("api.sock")
    }

    /// The instance's own folder (runtime files, logs); memif sockets of a test can go here.
    pub fn dir(&self) -> &Path {
        &self.run
    }

    /// The shared-memory prefix (`api-segment { prefix }`), unique to this instance.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, to find VPP's threads or to kill it from outside.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs one CLI command through `vppctl` and returns what it printed.
    pub fn cli(&self, command: &str) -> io::Result<String> {
        let output = Command::new(self.build.join("bin/vppctl"))
            .arg("-s")
            .arg(self.run.join("cli.sock"))
            .args(command.split_whitespace())
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "vppctl {command}: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// [`Self::cli`] that panics with VPP's words on error, for test set-up.
    pub fn cli_ok(&self, command: &str) -> String {
        let out = self
            .cli(command)
            .unwrap_or_else(|e| panic!("vppctl {command}: {e}"));
        // vppctl exits 0 even when the command failed; VPP's errors start like this.
        assert!(
            !out.contains("unknown input") && !out.trim_start().starts_with("error"),
            "vppctl {command}: {out}"
        );
        out
    }

    /// Kills VPP (SIGKILL: as a crash) and starts it again on the same sockets.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.launch()
    }

    /// Kills VPP and waits for it; what it held is gone (the folder stays until drop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The end of VPP's own log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for file in ["stdout.log", "vpp.log"] {
            if let Ok(body) = std::fs::read_to_string(self.run.join(file)) {
                let lines: Vec<&str> = body.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                text.push_str(&format!("[{file}]\n{tail}\n"));
            }
        }
        text
    }
}

impl Drop for VppInstance {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.run);
        let now = std::fs::read_to_string(HUGEPAGES).ok();
        if let (Some(before), Some(now)) = (&self.hugepages_before, now)
            && before.trim() != now.trim()
        {
            let _ = std::fs::write(HUGEPAGES, before.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_of_its_own_starts_restarts_and_leaves_nothing() {
        let Some(mut vpp) = VppInstance::start_or_skip("the VPP harness") else {
            return;
        };
        let other = VppInstance::start(&build().unwrap()).expect("a second VPP beside it");
        assert_ne!(vpp.api_socket(), other.api_socket());
        assert!(vpp.cli_ok("show version").contains("26.06"));
        let pid = vpp.pid();
        vpp.restart().unwrap();
        assert_ne!(vpp.pid(), pid);
        assert!(vpp.cli_ok("show version").contains("26.06"));
        let dir = vpp.dir().to_owned();
        drop(vpp);
        assert!(!dir.exists(), "{} is removed", dir.display());
        assert!(other.cli("show version").is_ok(), "the other one runs on");
    }
}
