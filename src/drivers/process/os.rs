//! What the process driver asks of the operating system: reading a pidfile into a process it
//! can trust is the one the file names, signalling it, running a shell command with a timeout,
//! and the lease files and their guardians that heal a fault when the run that applied it dies.
//!
//! Never signals a process it did not just read from a pidfile and check — or, for a freeze,
//! find below one by its parent links: not pid 0 or 1, not this process, not one that started
//! after its pidfile was written (a reused pid).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A process as a pidfile named it, with its start time (in clock ticks since boot): a pid
/// with another start time is another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
    pub pidfile: PathBuf,
    /// A descendant of the process `pidfile` names (a PostgreSQL backend under its postmaster),
    /// found by its parent links, not named by a file: it may exit on its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub child: bool,
}

/// The state letter and start time of `pid` from `/proc/PID/stat`, if it exists.
fn stat(pid: i32) -> Option<(char, u64)> {
    stat_parent(pid).map(|(state, _, start)| (state, start))
}

/// The state letter, parent pid and start time of `pid` from `/proc/PID/stat`.
fn stat_parent(pid: i32) -> Option<(char, i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: comm may hold spaces and parentheses; the fields follow the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    // Field 4 of proc(5), the parent; field 22, the start time (the 20th after the state's).
    let parent = f.get(1)?.parse().ok()?;
    let start = f.get(19)?.parse().ok()?;
    Some((state, parent, start))
}

/// Every live process descended from `roots` (their children, the children's, …), read from
/// `/proc` now: each named by its root's pidfile and marked `child`. A VM freeze stops them
/// all, not only the processes the pidfiles name (a PostgreSQL backend keeps serving its
/// connection while its postmaster is stopped).
pub fn descendants(roots: &[Proc]) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let table: Vec<(i32, char, i32, u64)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat_parent(pid).map(|(s, parent, start)| (pid, s, parent, start)))
        .collect();
    // The harness's own ancestors (a `timeout` wrapper, the CI shell) are never stopped, even
    // when a pidfile names one of theirs.
    let me = std::process::id() as i32;
    let mut ours = vec![me];
    while let Some(up) = ours
        .last()
        .and_then(|p| table.iter().find(|t| t.0 == *p))
        .map(|t| t.2)
        .filter(|pp| *pp > 1 && !ours.contains(pp))
    {
        ours.push(up);
    }
    let mut out: Vec<Proc> = Vec::new();
    let mut frontier: Vec<(i32, PathBuf)> = roots
        .iter()
        .filter(|r| alive(r))
        .map(|r| (r.pid, r.pidfile.clone()))
        .collect();
    while let Some((parent, pidfile)) = frontier.pop() {
        for (pid, state, _, start) in table.iter().filter(|(_, _, pp, _)| *pp == parent) {
            let known = roots.iter().any(|r| r.pid == *pid) || out.iter().any(|p| p.pid == *pid);
            if known || *pid <= 1 || ours.contains(pid) || matches!(state, 'Z' | 'X' | 'x') {
                continue;
            }
            out.push(Proc {
                pid: *pid,
                start: *start,
                pidfile: pidfile.clone(),
                child: true,
            });
            frontier.push((*pid, pidfile.clone()));
        }
    }
    out
}

fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

fn boot_time() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The process `pidfile` names, alive (not a zombie) and the one that wrote it.
pub fn read_pidfile(pidfile: &Path) -> Result<Proc, String> {
    let shown = pidfile.display();
    let text = std::fs::read_to_string(pidfile).map_err(|e| format!("pidfile {shown}: {e}"))?;
    let first = text.lines().next().unwrap_or("").trim();
    let pid: i32 = first
        .parse()
        .map_err(|_| format!("pidfile {shown}: `{first}` is not a process id"))?;
    if pid <= 1 || pid as u32 == std::process::id() {
        return Err(format!("pidfile {shown}: pid {pid} is never signalled"));
    }
    let (state, start) = stat(pid).ok_or_else(|| format!("pid {pid} ({shown}) is not running"))?;
    if matches!(state, 'Z' | 'X' | 'x') {
        return Err(format!("pid {pid} ({shown}) is not running (a zombie)"));
    }
    // A process that started after its pidfile was last written is not the one that wrote it:
    // the pid was reused. (Boot time has a one-second grain: allow two.)
    let written = std::fs::metadata(pidfile)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    if let (Some(written), Some(boot)) = (written, boot_time()) {
        let started = boot + start / clock_ticks();
        if started > written + 2 {
            return Err(format!(
                "pid {pid} started after {shown} was written: a stale pidfile, the pid now \
                 belongs to another process (never signalled)"
            ));
        }
    }
    Ok(Proc {
        pid,
        start,
        pidfile: pidfile.to_path_buf(),
        child: false,
    })
}

/// Whether `p` is still that process and alive.
pub fn alive(p: &Proc) -> bool {
    matches!(stat(p.pid), Some((s, start)) if start == p.start && !matches!(s, 'Z' | 'X' | 'x'))
}

/// Whether `p` is that process and stopped (SIGSTOP).
pub fn stopped(p: &Proc) -> bool {
    matches!(stat(p.pid), Some((s, start)) if start == p.start && matches!(s, 'T' | 't'))
}

pub use rustix::process::Signal;

/// Send `sig` to `p` if it is still that process. `Ok(false)`: it is gone.
///
/// A handle to the process (a pidfd) is opened first and checked after: if `p` exits and its
/// pid is reused between the check and the signal, the handle still names `p` (now gone: the
/// signal fails with ESRCH), never the newcomer. Where pidfds are not to be had (a kernel
/// before 5.3, a seccomp filter), the plain kill after the check is the fallback, with that
/// race.
pub fn signal(p: &Proc, sig: Signal) -> Result<bool, String> {
    use rustix::io::Errno;
    use rustix::process::{kill_process, pidfd_open, pidfd_send_signal, Pid, PidfdFlags};
    let Some(pid) = Pid::from_raw(p.pid) else {
        return Ok(false);
    };
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(Errno::SRCH) => return Ok(false),
        // No pidfds here (old kernel, seccomp), a thread id (EINVAL before Linux 6.9), out of
        // descriptors: the plain kill after the check.
        Err(_) => None,
    };
    // The check, after the handle is held: `fd` names the process this reads, or one gone.
    if !alive(p) {
        return Ok(false);
    }
    let sent = match &fd {
        Some(fd) => pidfd_send_signal(fd, sig),
        None => kill_process(pid, sig),
    };
    match sent {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(format!("signal {sig:?} to pid {}: {e}", p.pid)),
    }
}

/// What a shell command did.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: Option<i32>,
    /// Its stdout and stderr, at most [`OUTPUT_MAX`] bytes of each.
    pub output: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

pub const OUTPUT_MAX: usize = 4096;

/// Run `cmd` with `sh -c` in `cwd`, its own process group, bounded by `timeout` (then the
/// whole group is killed). Output goes to files, not pipes, so a command that starts a daemon
/// (which keeps them open) returns when the command does.
///
/// `group_file`: while the command runs, this file names its process group (`PGID START`, the
/// leader's start time), so a lease's guardian that heals in place of a run killed meanwhile
/// first kills the command that run left behind (it never runs two start commands at once).
pub async fn sh(
    cmd: &str,
    cwd: &Path,
    scratch: &Path,
    timeout: Duration,
    group_file: Option<&Path>,
) -> Result<Ran, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let tag = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
    let out_path = scratch.join(format!("out-{tag}"));
    let err_path = scratch.join(format!("err-{tag}"));
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let pgid = child.id().map(|p| p as i32);
    let named = match (
        group_file,
        pgid.and_then(|g| stat(g).map(|(_, st)| (g, st))),
    ) {
        (Some(f), Some((g, start))) => std::fs::write(f, format!("{g} {start}\n")).is_ok(),
        _ => false,
    };
    // Dropped before the command ends (a panic unwinding the run, a probe given up): its
    // whole group is killed, not only the `sh` (`kill_on_drop`). Disarmed once the `sh` has
    // ended, so what a finished command started in the background (a daemon) keeps running.
    let mut group = GroupKill(pgid.and_then(rustix::process::Pid::from_raw));
    let status = tokio::time::timeout(timeout, child.wait()).await;
    if matches!(status, Ok(Ok(_))) {
        group.0 = None;
    }
    if named {
        if let Some(f) = group_file {
            let _ = std::fs::remove_file(f);
        }
    }
    let read = |p: &Path| {
        let mut s = std::fs::read(p).unwrap_or_default();
        s.truncate(OUTPUT_MAX);
        let _ = std::fs::remove_file(p);
        String::from_utf8_lossy(&s).trim_end().to_string()
    };
    let text = |o: String, e: String| match (o.is_empty(), e.is_empty()) {
        (_, true) => o,
        (true, false) => e,
        (false, false) => format!("{o}\n{e}"),
    };
    match status {
        Ok(Ok(st)) => Ok(Ran {
            code: st.code(),
            output: text(read(&out_path), read(&err_path)),
        }),
        Ok(Err(e)) => Err(format!("waiting for `{cmd}`: {e}")),
        Err(_) => {
            if let Some(g) = group.0.take() {
                let _ = rustix::process::kill_process_group(g, Signal::KILL);
            }
            let _ = child.wait().await;
            let o = text(read(&out_path), read(&err_path));
            Err(format!(
                "`{cmd}` did not finish within {timeout:?} (killed){}",
                if o.is_empty() {
                    String::new()
                } else {
                    format!(": {o}")
                }
            ))
        }
    }
}

/// Kills a command's process group when dropped, unless disarmed (`None`).
struct GroupKill(Option<rustix::process::Pid>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            // The `sh` (the group's leader, not reaped yet: the child is dropped after this)
            // already ended: the command finished and what is left in its group it started
            // on purpose.
            if matches!(stat(g.as_raw_nonzero().get()), Some(('Z', _))) {
                return;
            }
            let _ = rustix::process::kill_process_group(g, Signal::KILL);
        }
    }
}

/// A fault's lease on disk: the file whose age the guardian watches. While it exists and is
/// younger than the lease, the fault holds; once it is older (the run stopped renewing), the
/// guardian renames it to `.expired`, runs the heal command, and removes it. A revert renames
/// it to `.reverting` first: the one rename that succeeds decides who heals. The reverting
/// process names itself in `.owner` (pid and start time) before it renames; the guardian
/// watches that process while `.reverting` is there, and heals if it dies before the revert
/// ends (a run killed mid-revert, its start command half done, leaves nothing applied).
#[derive(Debug, Clone)]
pub struct LeaseFile {
    pub path: PathBuf,
}

/// Who holds a lease's fault now.
#[derive(Debug, PartialEq, Eq)]
pub enum Holder {
    /// This revert took it (or had taken it on an earlier try): heal.
    Us,
    /// Its guardian is healing it now.
    Guardian,
    /// Nothing on disk: never taken, or healed already.
    Nobody,
}

impl LeaseFile {
    pub fn new(dir: &Path, by: &str) -> LeaseFile {
        // Run ids and fault names are letters, digits, `.`, `_` and `-`, kept as they are (two
        // faults never share a file); the `:` between them and anything else becomes `+`.
        let safe: String = by
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '+'
                }
            })
            .collect();
        LeaseFile {
            path: dir.join(format!("{safe}.lease")),
        }
    }

    fn with(&self, ext: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    }

    pub fn reverting(&self) -> PathBuf {
        self.with(".reverting")
    }

    /// The lease while its guardian heals; holds the revert's notes when it took over one.
    pub fn expired(&self) -> PathBuf {
        self.with(".expired")
    }

    /// The process group of the command this lease's fault runs now (see [`sh`]).
    pub fn command_group(&self) -> PathBuf {
        self.with(".cmd")
    }

    /// The pids a freeze stopped, one per line, appended before each is signalled: what its
    /// guardian's heal continues (children found after the lease was taken included).
    pub fn pids(&self) -> PathBuf {
        self.with(".pids")
    }

    /// Add `pids` to [`LeaseFile::pids`] (created if missing), each with its start time.
    pub fn add_pids(&self, pids: &[Proc]) -> Result<(), String> {
        use std::io::Write as _;
        let f = self.pids();
        if let Some(d) = f.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        // `pid start` a line: the guardian continues a pid only while it is still the process
        // that was stopped (its start time, as `/proc/PID/stat` gives it, unchanged).
        let text: String = pids
            .iter()
            .map(|p| format!("{} {}\n", p.pid, p.start))
            .collect();
        out.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", f.display()))
    }

    /// Create it (fresh) and start its guardian, detached in its own process group so that
    /// killing the run (or its process group) leaves it running.
    pub fn take(
        &self,
        lease: Duration,
        heal: &str,
        heal_timeout: Duration,
        cwd: &Path,
    ) -> Result<(), String> {
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&self.path, b"").map_err(|e| format!("{}: {e}", self.path.display()))?;
        let secs = lease.as_secs_f64().ceil().max(1.0) as u64;
        let t = heal_timeout.as_secs_f64().ceil().max(1.0) as u64;
        let spawned = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(GUARDIAN)
            .arg("chaos-lease-guardian")
            .arg(&self.path)
            .arg(secs.to_string())
            .arg(t.to_string())
            .arg(heal)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn();
        if let Err(e) = spawned {
            let _ = std::fs::remove_file(&self.path);
            return Err(format!("cannot start the lease guardian: {e}"));
        }
        Ok(())
    }

    /// Renew: the file's age starts again. `Err` when it is gone (the lease ran out).
    pub fn renew(&self) -> Result<(), String> {
        std::fs::File::options()
            .write(true)
            .open(&self.path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Take it back for a revert (also after a guardian's heal failed).
    pub fn claim(&self) -> Holder {
        // Who reverts, for the guardian to watch: written before the rename that hands the
        // fault over, so `.reverting` never exists without it.
        // Written whole, then renamed into place: the guardian never reads a half-written one
        // (an empty file would read as a dead owner).
        let me = std::process::id() as i32;
        if let Some((_, start)) = stat(me) {
            let tmp = self.with(&format!(".owner-{me}"));
            if std::fs::write(&tmp, format!("{me} {start}\n")).is_ok() {
                let _ = std::fs::rename(&tmp, self.with(".owner"));
            }
        }
        if std::fs::rename(&self.path, self.reverting()).is_ok()
            || self.reverting().exists()
            || std::fs::rename(self.with(".failed"), self.reverting()).is_ok()
        {
            return Holder::Us;
        }
        // Not ours to revert: no owner left behind.
        let _ = std::fs::remove_file(self.with(".owner"));
        if self.with(".expired").exists() {
            return Holder::Guardian;
        }
        Holder::Nobody
    }

    /// What an earlier try of this revert noted (nodes already started).
    pub fn notes(&self) -> Vec<String> {
        std::fs::read_to_string(self.reverting())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn note(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::File::options().append(true).open(self.reverting()) {
            let _ = writeln!(f, "{line}");
        }
    }

    /// The revert is done: nothing is left on disk.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.reverting());
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.pids());
        let _ = std::fs::remove_file(self.with(".owner"));
        let _ = std::fs::remove_file(self.command_group());
    }
}

/// The guardian: `sh -c GUARDIAN chaos-lease-guardian FILE LEASE_S HEAL_TIMEOUT_S HEAL`. Polls
/// twice a second. The clock has a one-second grain (`date +%s`, `stat %Y`): the lease runs
/// out between LEASE and LEASE + 1 s after the last renewal, never before. Once a revert has
/// taken the file (`.reverting`), the guardian watches the process `.owner` names (alive, with
/// the same start time, not a zombie) and heals in its place if it dies before the revert is
/// done; it exits when the revert has released everything, or after healing. A heal that
/// fails leaves `.failed`: a later revert (`chaos rollback`) takes it up.
const GUARDIAN: &str = r#"f=$1; lease=$2; t=$3; heal=$4
heal() {
  # A command the dead run left running (a start command half done) is killed first.
  if read -r pg _ <"$f.cmd" 2>/dev/null; then kill -KILL -- "-$pg" 2>/dev/null; rm -f "$f.cmd"; fi
  if timeout -s KILL "$t" sh -c "$heal" >"$f.log" 2>&1; then
    rm -f "$f.expired" "$f.owner"
  else
    mv "$f.expired" "$f.failed"
  fi
}
owner_alive() {
  read -r op os <"$f.owner" 2>/dev/null || return 1
  st=$(sed 's/.*) //' /proc/"$op"/stat 2>/dev/null) || return 1
  [ "${st%% *}" != Z ] && [ "$(printf '%s
' "$st" | cut -d' ' -f20)" = "$os" ]
}
while :; do
  if [ -e "$f" ]; then
    m=$(stat -c %Y "$f" 2>/dev/null) || m=$(date +%s)
    now=$(date +%s)
    # A failed rename: a revert took it meanwhile; watch that revert (next turn).
    if [ $((now - m)) -gt "$lease" ] && mv "$f" "$f.expired" 2>/dev/null; then
      heal
      exit 0
    fi
  elif [ -e "$f.reverting" ] && [ -e "$f.owner" ]; then
    if ! owner_alive && mv "$f.reverting" "$f.expired" 2>/dev/null; then heal; exit 0; fi
  else
    exit 0
  fi
  sleep 0.5
done"#;
