//! `chaos merge DIR... --out RUN`: the shards of one sharded run (`chaos run --shard I/N`)
//! joined into one [`RunRecord`], which [`super::judge::judge`] then judges as it judges a run
//! on one machine — the same SLOs, windows, recovery and verdict, from the same function.
//!
//! What is merged, and how:
//! - the recordings, interval by interval and request by request: HDR histograms added and
//!   counters summed ([`Recording::merge`]), so a merged percentile is that of every shard's
//!   samples together, never an average of the shards' percentiles; the journeys' recordings
//!   and counts alike; the kept failed responses, the first few per request over all shards;
//! - the faults, the journal and the control plane's events: the conductor's (shard 0 drives
//!   every fault; the others record them as driven there), so every window is the conductor's;
//! - the scheduled count, the durable writes and their read-back: summed over the shards;
//!   wall time: the longest; an abort: the earliest.
//!
//! Refused (exit 2, bad input): a directory that is not a shard's run, shards of different
//! runs (scenario digest, target, shard count, `--start-at`, time scale), a shard given twice.
//! A merge that misses a shard — its directory has no report.json or a report.json that is not
//! whole (killed, or failed before writing), or it was never given — or holds an interrupted
//! one is a failure with every reason (exit 1), never a verdict on part of the run. A shard
//! that read its durable writes back before the conductor's last revert has them counted
//! unverified. Reads the shards' report.json; writes nothing (the CLI writes the merged run's
//! reports).

use std::path::{Path, PathBuf};

use super::record::{self, ReadError, RunRecord};
use crate::run::shard::{ShardInfo, CONDUCTOR};
use crate::scenario::Scenario;

/// Why shards could not be merged into a verdict.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Not the shards of one run, or not shards at all: bad input.
    #[error("{0}")]
    Mismatch(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Reread(#[from] super::reread::RereadError),
    /// A shard is missing or did not finish: no verdict on part of a run.
    #[error("FAIL: the merged run is incomplete, so it has no verdict:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Incomplete(Vec<String>),
}

impl MergeError {
    /// 1 for a run that is incomplete (it failed), 2 for input that is not one run's shards.
    pub fn exit_code(&self) -> i32 {
        match self {
            MergeError::Incomplete(_) => 1,
            _ => 2,
        }
    }
}

/// One shard's run, read back.
struct Part {
    dir: PathBuf,
    info: ShardInfo,
    digest: Option<String>,
    record: RunRecord,
}

/// The merged run: the scenario as the conductor ran it, and the record to judge.
pub struct Merged {
    pub scenario: Scenario,
    pub record: RunRecord,
}

/// Read every shard's report.json (`dirs`: run directories, or report.json files) and merge
/// them (see the module doc).
pub fn merge(dirs: &[PathBuf]) -> Result<Merged, MergeError> {
    if dirs.is_empty() {
        return Err(MergeError::Mismatch(
            "no shard given: pass every shard's run directory".into(),
        ));
    }
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for d in dirs {
        let path = if d.is_file() {
            d.clone()
        } else {
            d.join("report.json")
        };
        let file = match record::load(&path) {
            Ok(f) => f,
            Err(ReadError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                problems.push(format!(
                    "{}: no report.json — the shard did not finish (killed, or failed before writing its reports)",
                    d.display()
                ));
                continue;
            }
            // Written by renaming a whole file into place: one that is not JSON was cut short
            // by something else (a full disk, a copy that broke off).
            Err(ReadError::NotJson { source, .. }) => {
                problems.push(format!(
                    "{}: its report.json is not whole ({source})",
                    d.display()
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let info = match file.shards.as_slice() {
            [one] if one.index < one.count && one.count <= crate::run::shard::MAX_SHARDS => {
                one.clone()
            }
            _ => {
                return Err(MergeError::Mismatch(format!(
                    "{}: not a shard's run (run each shard with --shard I/N --start-at T)",
                    d.display()
                )))
            }
        };
        let digest = file.scenario_digest.clone();
        let record =
            file.into_run_record()
                .map_err(|source| super::reread::RereadError::Record {
                    path: path.clone(),
                    source,
                })?;
        parts.push(Part {
            dir: d.clone(),
            info,
            digest,
            record,
        });
    }
    check_one_run(&parts)?;
    let count = parts
        .first()
        .map(|p| p.info.count)
        .unwrap_or(dirs.len() as u32);
    for i in 0..count {
        if !parts.iter().any(|p| p.info.index == i) {
            let what = if i == CONDUCTOR {
                " — the conductor: it drove the faults, and their times are in its record"
            } else {
                ""
            };
            problems.push(format!("shard {i}/{count} is missing{what}"));
        }
    }
    for p in parts.iter().filter(|p| p.record.interrupted) {
        problems.push(format!(
            "shard {}/{} ({}) was interrupted before its end",
            p.info.index,
            p.info.count,
            p.dir.display()
        ));
    }
    if !problems.is_empty() {
        return Err(MergeError::Incomplete(problems));
    }
    parts.sort_by_key(|p| p.info.index);
    unverify_early_read_backs(&mut parts);
    let conductor = &parts[0];
    let scenario =
        super::reread::scenario_of(&conductor.dir.join("report.json"), &conductor.record, None)?;
    let record = join(parts)?;
    Ok(Merged { scenario, record })
}

/// Every part is a shard of the same run, each index once.
fn check_one_run(parts: &[Part]) -> Result<(), MergeError> {
    let Some(first) = parts.first() else {
        return Ok(());
    };
    for p in parts {
        let differs = |what: &str, a: &str, b: &str| {
            MergeError::Mismatch(format!(
                "{} and {} are not shards of one run: their {what} differ ({a} and {b})",
                first.dir.display(),
                p.dir.display()
            ))
        };
        if p.digest != first.digest {
            return Err(differs(
                "scenarios",
                first.digest.as_deref().unwrap_or("none"),
                p.digest.as_deref().unwrap_or("none"),
            ));
        }
        if p.info.count != first.info.count {
            let (a, b) = (first.info.count.to_string(), p.info.count.to_string());
            return Err(differs("shard counts", &a, &b));
        }
        if p.info.start_at != first.info.start_at {
            return Err(differs(
                "--start-at",
                &first.info.start_at,
                &p.info.start_at,
            ));
        }
        if p.record.target_url != first.record.target_url {
            return Err(differs(
                "targets",
                &first.record.target_url,
                &p.record.target_url,
            ));
        }
        if p.record.time_scale != first.record.time_scale {
            let (a, b) = (
                first.record.time_scale.to_string(),
                p.record.time_scale.to_string(),
            );
            return Err(differs("time scales", &a, &b));
        }
    }
    for (k, p) in parts.iter().enumerate() {
        if let Some(q) = parts[..k].iter().find(|q| q.info.index == p.info.index) {
            return Err(MergeError::Mismatch(format!(
                "shard {}/{} is given twice: {} and {}",
                p.info.index,
                p.info.count,
                q.dir.display(),
                p.dir.display()
            )));
        }
    }
    Ok(())
}

/// A shard that read its writes back before the conductor's last revert read a system still
/// under a fault: its answers prove nothing either way, so its writes count as unverified
/// (never found, never lost). `parts` sorted by index, the conductor first.
fn unverify_early_read_backs(parts: &mut [Part]) {
    let Some((conductor, others)) = parts.split_first_mut() else {
        return;
    };
    let last_revert = conductor
        .record
        .faults
        .iter()
        .filter_map(|f| f.reverted_at_s)
        .fold(0.0f64, f64::max);
    for p in others {
        if p.record.verification.is_none() {
            continue;
        }
        let read_at = p.info.read_back_at_s.unwrap_or(0.0);
        if read_at < last_revert {
            let why = format!(
                "read back at {read_at:.1} s, before the conductor's last revert at {last_revert:.1} s"
            );
            p.record.verification = Some(crate::verify::Verification::none_read(
                &p.record.durable_writes,
                &why,
            ));
        }
    }
}

/// The shards' records as one (`parts` sorted by index, the conductor first).
fn join(parts: Vec<Part>) -> Result<RunRecord, MergeError> {
    let mut it = parts.into_iter();
    let Some(first) = it.next() else {
        return Err(MergeError::Mismatch("no shard to merge".into()));
    };
    let mut shards = vec![first.info];
    let mut m = first.record;
    m.shards = Vec::new();
    for p in it {
        let r = p.record;
        let mismatch = |why: String| {
            MergeError::Mismatch(format!(
                "{}: cannot merge its recording: {why}",
                p.dir.display()
            ))
        };
        m.recording.merge(&r.recording).map_err(mismatch)?;
        m.recording.failures.extend(r.recording.failures);
        match (&mut m.journeys, r.journeys) {
            (Some(mine), Some(theirs)) => {
                mine.recording.merge(&theirs.recording).map_err(mismatch)?;
                for (a, b) in mine.counts.iter_mut().zip(theirs.counts) {
                    a.started += b.started;
                    a.completed += b.completed;
                    a.canceled += b.canceled;
                    for (x, y) in a.failed.iter_mut().zip(b.failed) {
                        x.1 += y.1;
                    }
                }
            }
            (None, None) => {}
            _ => return Err(mismatch("one has users, the other not".into())),
        }
        m.scheduled += r.scheduled;
        m.wall = m.wall.max(r.wall);
        m.started_at = m.started_at.min(r.started_at);
        m.aborted = match (m.aborted.take(), r.aborted) {
            (Some(a), Some(b)) => Some(if b.1 < a.1 { b } else { a }),
            (a, b) => a.or(b),
        };
        m.durable_writes.extend(r.durable_writes);
        m.durable_without_id += r.durable_without_id;
        m.verification = match (m.verification.take(), r.verification) {
            (Some(mut a), Some(b)) => {
                a.absorb(b);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        shards.push(p.info);
    }
    keep_first_failures(&mut m.recording);
    m.shards = shards;
    Ok(m)
}

/// The first few failed responses of each request over all shards, as one run keeps them:
/// by request (scenario order), then intended time.
fn keep_first_failures(rec: &mut crate::metrics::Recording) {
    let names = rec.names.clone();
    let order = |f: &crate::metrics::FailedResponse| {
        names
            .iter()
            .position(|n| *n == f.request)
            .unwrap_or(usize::MAX)
    };
    rec.failures
        .sort_by(|a, b| order(a).cmp(&order(b)).then(a.at_s.total_cmp(&b.at_s)));
    let mut kept: Vec<crate::metrics::FailedResponse> = Vec::new();
    for f in std::mem::take(&mut rec.failures) {
        let n = kept.iter().filter(|k| k.request == f.request).count();
        if n < crate::load::failures::KEEP {
            kept.push(f);
        }
    }
    rec.failures = kept;
}

/// The directory `chaos merge` writes into by default: next to the shards, `merged`.
pub fn default_out(dirs: &[PathBuf]) -> PathBuf {
    dirs.first()
        .and_then(|d| d.parent())
        .map_or_else(|| PathBuf::from("merged"), |p: &Path| p.join("merged"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::shard::ShardInfo;

    /// A real run's report.json (db-failover on the sandbox: a fault injected and reverted at
    /// 3.5 s, 184 durable writes read back), standing in for each shard's.
    const RUN: &str = include_str!("../../tests/fixtures/report-v1-db-failover.json");

    /// Shards of one run, each the fixture with its shard entry, in `dir/shard-I/report.json`;
    /// `read_back_at_s` per shard.
    fn shards(tag: &str, read_back: &[f64]) -> (PathBuf, Vec<PathBuf>) {
        let dir = std::env::temp_dir().join(format!("chaos-merge-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let n = read_back.len() as u32;
        let dirs: Vec<PathBuf> = (0..n)
            .map(|i| {
                let d = dir.join(format!("shard-{i}"));
                std::fs::create_dir_all(&d).unwrap();
                let mut v: serde_json::Value = serde_json::from_str(RUN).unwrap();
                v["shards"] = serde_json::to_value([ShardInfo {
                    index: i,
                    count: n,
                    start_at: "2026-12-07T06:30:00.000Z".into(),
                    late_us: 1000,
                    conductor: 0,
                    read_back_at_s: Some(read_back[i as usize]),
                    clock_offset_us: None,
                    clock_rtt_us: None,
                }])
                .unwrap();
                std::fs::write(d.join("report.json"), v.to_string()).unwrap();
                d
            })
            .collect();
        (dir, dirs)
    }

    fn one() -> RunRecord {
        record::parse(Path::new("r.json"), RUN)
            .unwrap()
            .into_run_record()
            .unwrap()
    }

    #[test]
    fn shards_add_up_exactly_and_keep_the_percentiles_of_all_their_samples() {
        let (dir, dirs) = shards("sum", &[5.0, 5.0, 5.0]);
        let m = merge(&dirs).unwrap_or_else(|e| panic!("{e}"));
        let single = one();
        let (a, b) = (
            m.record.recording.aggregate(0, usize::MAX, None),
            single.recording.aggregate(0, usize::MAX, None),
        );
        assert_eq!(m.record.scheduled, 3 * single.scheduled);
        assert_eq!(a.requests(), 3 * b.requests());
        assert_eq!(a.errors(), 3 * b.errors());
        // Three copies of one run's samples have that run's quantiles exactly.
        for q in [0.5, 0.99, 1.0] {
            assert_eq!(
                a.latency.value_at_quantile(q),
                b.latency.value_at_quantile(q)
            );
        }
        for (x, y) in m
            .record
            .recording
            .intervals
            .iter()
            .zip(&single.recording.intervals)
        {
            for (cx, cy) in x.iter().zip(y) {
                assert_eq!(cx.to_stats().requests(), 3 * cy.to_stats().requests());
            }
        }
        let v = m.record.verification.as_ref().unwrap();
        assert_eq!((v.checked, v.found, v.lost.len()), (3 * 184, 3 * 184, 0));
        let times = |r: &RunRecord| {
            r.faults
                .iter()
                .map(|f| (f.name.clone(), f.injected_at_s, f.reverted_at_s))
                .collect::<Vec<_>>()
        };
        assert_eq!(times(&m.record), times(&single), "the conductor's faults");
        assert_eq!(m.record.shards.len(), 3);
        // Judged like one run.
        let report = crate::report::judge::judge(m.scenario, m.record).unwrap();
        assert!(!report.slo.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The header's clock line: a shard whose clock is ahead of the conductor's (a negative
    /// recorded offset: the conductor's minus the shard's) reads `+`, one behind `-`.
    #[test]
    fn the_header_says_which_way_each_clock_is_off() {
        let info = |index: u32, offset: i64| ShardInfo {
            index,
            count: 3,
            start_at: "2026-12-07T06:30:00.000Z".into(),
            late_us: 1000,
            conductor: 0,
            read_back_at_s: None,
            clock_offset_us: (index > 0).then_some(offset),
            clock_rtt_us: (index > 0).then_some(200),
        };
        let mut r =
            crate::report::judge::judge(crate::run::prepare("db-failover", 1.0).unwrap(), one())
                .unwrap();
        r.shards = vec![info(1, -1500)];
        let line = r.shard_line().unwrap();
        assert!(
            line.contains("its clock +1.5ms ±100µs against the conductor's"),
            "{line}"
        );
        r.shards = vec![info(0, 0), info(1, -1500), info(2, 2500)];
        let line = r.shard_line().unwrap();
        assert!(
            line.contains(
                "clocks against the conductor's: shard 1 +1.5ms ±100µs, shard 2 -2.5ms ±100µs"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_read_back_before_the_conductors_last_revert_proves_nothing() {
        // The fault is reverted at 3.5 s: shard 1 read back at 2 s, shard 2 at 4 s.
        let (dir, dirs) = shards("early", &[5.0, 2.0, 4.0]);
        let m = merge(&dirs).unwrap_or_else(|e| panic!("{e}"));
        let v = m.record.verification.as_ref().unwrap();
        assert_eq!((v.checked, v.found, v.lost.len()), (3 * 184, 2 * 184, 0));
        assert_eq!(v.unverified.len(), 184, "shard 1's writes");
        assert!(
            v.unverified[0]
                .reason
                .contains("before the conductor's last revert at 3.5 s"),
            "{:?}",
            v.unverified[0]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_cut_short_shard_fails_the_merge_and_other_runs_are_refused() {
        let (dir, dirs) = shards("missing", &[5.0, 5.0, 5.0]);
        // Shard 2 never given, shard 1 cut short while writing.
        std::fs::write(dirs[1].join("report.json"), &RUN[..RUN.len() / 2]).unwrap();
        match merge(&dirs[..2]) {
            Err(e @ MergeError::Incomplete(_)) => {
                let text = e.to_string();
                assert_eq!(e.exit_code(), 1);
                assert!(
                    text.contains("shard-1: its report.json is not whole"),
                    "{text}"
                );
                assert!(text.contains("shard 1/3 is missing"), "{text}");
                assert!(text.contains("shard 2/3 is missing"), "{text}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a partial merge passed"),
        }
        // The same shard twice; a run that is no shard.
        let twice = [dirs[0].clone(), dirs[0].clone()];
        let e = merge(&twice).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("given twice"), "{e}");
        let plain = dir.join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("report.json"), RUN).unwrap();
        let e = merge(&[dirs[0].clone(), plain]).err().unwrap();
        assert!(e.to_string().contains("not a shard's run"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
