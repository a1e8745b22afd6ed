//! The local driver's log part: the stack's own HA machinery, as it writes it. Each
//! `[logs.NAME]` file of a local target is read from where it ended when the driver connected;
//! each complete line that holds one of its `lines` becomes a snapshot entry `log NAME #N`
//! (the line itself, its own timestamp in it), so the control-plane watch turns each into one
//! event beside the run's recovery — Patroni's "promoted self to leader", Sentinel's
//! `+switch-master`, haproxy's "is DOWN". (Lines read by the watch's first poll, one interval
//! before the first fault, are its baseline, not events.)
//!
//! It only reads, at most [`READ_MAX`] bytes a poll and [`LINES_MAX`] lines a log; a file that
//! is missing is read once it appears, one that shrank or was replaced (rotated, truncated)
//! from its start. It must never write to the files or follow anything but the paths the
//! target names.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::fault::Snapshot;
use crate::target::local::LogConfig;

/// At most this much of a log is read per poll (the rest at the next).
pub const READ_MAX: u64 = 1 << 20;
/// At most this many of a log's lines are kept as events (a chatty pattern must not flood the
/// report); later ones are counted.
pub const LINES_MAX: usize = 200;
/// A line longer than this is cut (at a character boundary).
const LINE_CHARS: usize = 300;

pub struct LogWatch {
    logs: Vec<Watched>,
}

struct Watched {
    name: String,
    file: PathBuf,
    lines: Vec<String>,
    at: Mutex<Reading>,
}

#[derive(Default)]
struct Reading {
    /// Which file (device, inode) the offset is in: a log replaced by another (rotated by a
    /// rename) is read from its start.
    file_id: Option<(u64, u64)>,
    /// Where the next read starts.
    offset: u64,
    /// A line read without its end yet.
    partial: Vec<u8>,
    /// Inside a line too long to keep: skip to its end.
    skipping: bool,
    seen: Vec<String>,
    dropped: u64,
}

impl LogWatch {
    /// Each log, from its current end (what was written before the run is not its event).
    pub fn new(logs: &[LogConfig]) -> LogWatch {
        LogWatch {
            logs: logs
                .iter()
                .map(|l| Watched {
                    name: l.name.clone(),
                    file: l.file.clone(),
                    lines: l.lines.clone(),
                    at: Mutex::new(Reading {
                        file_id: std::fs::metadata(&l.file).ok().map(|m| id_of(&m)),
                        offset: std::fs::metadata(&l.file).map_or(0, |m| m.len()),
                        ..Reading::default()
                    }),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Read what each log gained since the last poll; every matching line so far, by key.
    pub fn poll(&self) -> Snapshot {
        let mut s = Snapshot::new();
        for w in &self.logs {
            let mut r = w.at.lock().unwrap_or_else(|p| p.into_inner());
            w.read_new(&mut r);
            for (i, line) in r.seen.iter().enumerate() {
                s.insert(format!("log {} #{:03}", w.name, i + 1), line.clone());
            }
            // One event when the cap is reached, not one per poll after it.
            if r.dropped > 0 {
                s.insert(
                    format!("log {} (more)", w.name),
                    format!("more than {LINES_MAX} matching lines: later ones not kept"),
                );
            }
        }
        s
    }
}

/// A file's (device, inode).
fn id_of(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (m.dev(), m.ino())
}

impl Watched {
    fn read_new(&self, r: &mut Reading) {
        let Ok(mut f) = std::fs::File::open(&self.file) else {
            return;
        };
        let Ok(meta) = f.metadata() else {
            return;
        };
        let len = meta.len();
        let id = Some(id_of(&meta));
        if len < r.offset || (r.file_id.is_some() && r.file_id != id) {
            r.offset = 0;
            r.partial.clear();
            r.skipping = false;
        }
        r.file_id = id;
        if len == r.offset || f.seek(SeekFrom::Start(r.offset)).is_err() {
            return;
        }
        let mut got = Vec::new();
        let Ok(n) = f.take(READ_MAX).read_to_end(&mut got) else {
            return;
        };
        r.offset += n as u64;
        let mut got = &got[..];
        if r.skipping {
            // The rest of a line too long to keep: dropped up to its end.
            match got.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    got = &got[i + 1..];
                    r.skipping = false;
                }
                None => return,
            }
        }
        r.partial.extend_from_slice(got);
        let Some(end) = r.partial.iter().rposition(|b| *b == b'\n') else {
            // No complete line yet; a runaway line without an end is dropped, to its end.
            if r.partial.len() as u64 > READ_MAX {
                r.partial.clear();
                r.skipping = true;
            }
            return;
        };
        let complete: Vec<u8> = r.partial.drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete).lines() {
            let line = line.trim_end();
            if !self.lines.iter().any(|want| line.contains(want.as_str())) {
                continue;
            }
            if r.seen.len() >= LINES_MAX {
                r.dropped += 1;
                continue;
            }
            r.seen.push(line.chars().take(LINE_CHARS).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn lines_written_after_the_start_that_hold_a_pattern_are_events_in_order() {
        let dir = std::env::temp_dir().join(format!("chaos-logwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("patroni.log");
        std::fs::write(&file, "old: promoted self to leader\n").unwrap();
        let later = dir.join("sentinel.log"); // appears during the run
        let w = LogWatch::new(&[
            LogConfig {
                name: "patroni".into(),
                file: file.clone(),
                lines: vec!["promoted self to leader".into(), "Demoting".into()],
            },
            LogConfig {
                name: "sentinel".into(),
                file: later.clone(),
                lines: vec!["+switch-master".into()],
            },
        ]);
        assert!(w.poll().is_empty(), "what was there before is not an event");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        write!(
            f,
            "10:00:01 no action\n10:00:02 INFO: promoted self to leader by acq"
        )
        .unwrap();
        f.flush().unwrap();
        assert!(w.poll().is_empty(), "a line without its end waits");
        writeln!(
            f,
            "uiring session lock\n10:00:03 INFO: Demoting self (immediate)"
        )
        .unwrap();
        std::fs::write(&later, "x # +switch-master chaos 127.0.0.1 1 127.0.0.1 2\n").unwrap();
        let s = w.poll();
        let got: Vec<(&str, &str)> = s.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "log patroni #001",
                    "10:00:02 INFO: promoted self to leader by acquiring session lock"
                ),
                (
                    "log patroni #002",
                    "10:00:03 INFO: Demoting self (immediate)"
                ),
                (
                    "log sentinel #001",
                    "x # +switch-master chaos 127.0.0.1 1 127.0.0.1 2"
                ),
            ]
        );
        // Truncated (rotated): read again from its start.
        std::fs::write(&file, "promoted self to leader again\n").unwrap();
        assert_eq!(
            w.poll()["log patroni #003"],
            "promoted self to leader again"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_chatty_pattern_is_capped_and_counted() {
        let dir = std::env::temp_dir().join(format!("chaos-logcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.log");
        std::fs::write(&file, "").unwrap();
        let w = LogWatch::new(&[LogConfig {
            name: "x".into(),
            file: file.clone(),
            lines: vec!["DOWN".into()],
        }]);
        let many: String = (0..LINES_MAX + 5)
            .map(|i| format!("{i} is DOWN\n"))
            .collect();
        std::fs::write(&file, many).unwrap();
        let s = w.poll();
        assert_eq!(s.len(), LINES_MAX + 1);
        assert_eq!(
            s["log x (more)"],
            format!("more than {LINES_MAX} matching lines: later ones not kept")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
