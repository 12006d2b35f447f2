//! One run per task: an exclusive OS file lock (`flock`) on `run.lock` next to the state
//! store, held for the whole run and released by the kernel when the process ends in any
//! way (even `kill -9`), so a dead run never blocks the next one. The file also names its
//! holder (pid, host, start time) for the refusal message, `tidemark status` and
//! `tidemark stop`; that text is only a description, the lock itself decides.
//!
//! `flock` is local to one machine: a state directory shared over a network file system
//! with runs on several hosts is not protected (keep one state directory per host).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const FILE: &str = "run.lock";

/// Who holds (or last held) a task's lock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339, UTC.
    pub started_at: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {}, started {}",
            self.pid, self.host, self.started_at
        )
    }
}

/// The held lock; dropping it (or the process ending) releases it.
pub struct RunLock {
    _file: File,
}

/// This machine's host name (for the holder record).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // when the name fits (a truncated name is still usable as a description).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// `flock(fd, op)`: `Ok(true)` when taken, `Ok(false)` when another holder has it.
fn try_flock(file: &File, op: libc::c_int) -> Result<bool> {
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(err).context("locking the task's run.lock")
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl RunLock {
    /// Takes the task's lock, or says which process holds it.
    pub fn acquire(dir: &Path, task: &str) -> Result<RunLock> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let p = path(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .with_context(|| format!("cannot open {}", p.display()))?;
        // `status` holds a shared lock for an instant to see whether a run is alive:
        // refused only for that long, the lock is tried again for a moment.
        let mut taken = try_flock(&file, libc::LOCK_EX)?;
        for _ in 0..50 {
            if taken {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            taken = try_flock(&file, libc::LOCK_EX)?;
        }
        if !taken {
            let who = read_holder(&mut file)
                .map(|h| h.to_string())
                .unwrap_or_else(|| "a process that is just starting".into());
            bail!(
                "task {task} is already running ({who}): one task runs once at a time, or both would write the same rows and checkpoints. \
                 See it with `tidemark status`, stop it with `tidemark stop` (or wait for it), then run again"
            );
        }
        let me = Holder {
            pid: std::process::id(),
            host: host_name(),
            started_at: super::now_rfc3339(),
        };
        file.set_len(0).context("writing run.lock")?;
        file.rewind().context("writing run.lock")?;
        file.write_all(serde_json::to_string(&me)?.as_bytes())
            .and_then(|()| file.flush())
            .context("writing run.lock")?;
        Ok(RunLock { _file: file })
    }
}

/// What the lock file says about a task's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Process {
    /// A process holds the lock now.
    Running(Option<Holder>),
    /// Nobody holds it; the last holder, if any ran.
    NotRunning(Option<Holder>),
}

/// Whether a run of the task in `dir` is alive, and who it is (or was).
pub fn process(dir: &Path) -> Result<Process> {
    let p = path(dir);
    let mut file = match File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Process::NotRunning(None)),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", p.display())),
    };
    let holder = read_holder(&mut file);
    // A shared lock is refused exactly while a run holds the exclusive one; taken, it is
    // released when `file` closes at the end of this function.
    if try_flock(&file, libc::LOCK_SH)? {
        Ok(Process::NotRunning(holder))
    } else {
        Ok(Process::Running(holder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(process(dir.path()).unwrap(), Process::NotRunning(None));
        let lock = RunLock::acquire(dir.path(), "t").unwrap();
        let Process::Running(Some(h)) = process(dir.path()).unwrap() else {
            panic!("the lock should be seen as held");
        };
        assert_eq!(h.pid, std::process::id());
        let err = RunLock::acquire(dir.path(), "t").err().expect("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("tidemark stop"), "{msg}");
        drop(lock);
        assert!(matches!(
            process(dir.path()).unwrap(),
            Process::NotRunning(Some(_))
        ));
        RunLock::acquire(dir.path(), "t").expect("free again");
    }
}
