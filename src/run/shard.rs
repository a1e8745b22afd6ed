//! Sharded runs (DESIGN.md "Scale past one machine"): `--shard I/N` and `--start-at T` read
//! and checked, which part of the one schedule is this shard's, and what a shard's run record
//! says about it.
//!
//! The split is arithmetic on the single-machine schedule, so the union of the shards'
//! arrivals is exactly that schedule: shard I sends the arrivals numbered n ≡ I (mod N) (n
//! counts the whole schedule's arrivals, as `{{seq}}` does). Users are dealt the same way: of
//! a stage's u users, shard I runs those numbered k·N + I < u, so `{{user}}` over all shards is
//! exactly 0..u (journey steps' `{{seq}}` is numbered alike, unique over the shards). Which
//! journey a user runs is goose's choice within each shard (round robin over the weights), so
//! with fewer users per shard than the journeys' weights add up to, the mix differs from one
//! machine's. Every shard starts its clock at the same wall-clock instant, `--start-at`; shard
//! 0 (the conductor) drives the faults, the others record them as driven there — with
//! `--conductor`, with the times the conductor serves as they happen ([`super::conductor`]) —
//! and `chaos merge` (`report::merge`) takes the fault timeline from the conductor's record.
//! Nothing here sends, waits or judges.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (`--shard 1/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The most shards a run can be split into.
pub const MAX_SHARDS: u32 = 1000;

/// The shard that drives the faults.
pub const CONDUCTOR: u32 = 0;

impl Shard {
    /// `I/N`, 0 ≤ I < N ≤ [`MAX_SHARDS`].
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard {s:?} is not I/N: give this shard's index from 0 and the number of shards, e.g. --shard 0/3 (up to {MAX_SHARDS} shards)"
            )
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether arrival `n` of the whole schedule is this shard's.
    pub fn takes(&self, n: u64) -> bool {
        n % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's share of `total` users: those numbered k·N + I below `total` (the shares
    /// of all shards sum to `total`).
    pub fn users(&self, total: u32) -> u32 {
        if total <= self.index {
            0
        } else {
            (total - self.index - 1) / self.count + 1
        }
    }

    /// The whole run's number of this shard's `local`-th user, or step (`{{user}}`,
    /// `{{seq}}`): `local` times N plus I, unique over all shards.
    pub fn global(&self, local: u64) -> u64 {
        local * u64::from(self.count) + u64::from(self.index)
    }

    pub fn is_conductor(&self) -> bool {
        self.index == CONDUCTOR
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a shard's report.json says about the shard (`shards`, one entry; a merged run lists
/// every shard it was merged from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub index: u32,
    pub count: u32,
    /// The agreed start, UTC with milliseconds (`--start-at`).
    pub start_at: String,
    /// How late after `start_at` this shard's clock really started (its timer's wake-up).
    /// Wall clocks are not compared between machines: each shard trusts its own (NTP).
    pub late_us: u64,
    /// The shard that drove the faults.
    pub conductor: u32,
    /// When this shard began reading its durable writes back (seconds from the start); none
    /// when it read none back. A shard that read back before the conductor's last revert did
    /// not see the system as the run left it: `chaos merge` counts its writes unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back_at_s: Option<f64>,
    /// This shard's clock offset to the conductor's (the conductor's wall clock minus this
    /// shard's, µs), measured on the conductor feed (`--conductor`; none on the conductor, the
    /// reference, and without a feed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_us: Option<i64>,
    /// The round trip the offset was measured on (µs): the offset's error is at most half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_rtt_us: Option<u64>,
}

/// A shard may start at most this late: past it the shards would not run in lock step.
pub const MAX_LATE: Duration = Duration::from_secs(1);

/// A start further ahead than this is taken for a typo.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// `--start-at`: `2026-12-07T06:30:00Z`, optionally with a fraction of a second
/// (`…00.250Z`). UTC only (`Z`): every shard reads the same instant whatever its time zone.
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "--start-at {s:?} is not a UTC time like 2026-12-07T06:30:00Z (RFC 3339, `Z`, an optional fraction of a second): compute it once for every shard, e.g. $(date -u -d '+30 seconds' +%FT%TZ)"
        )
    };
    let t = s.trim();
    let (whole, frac) = match t.strip_suffix('Z').and_then(|x| x.split_once('.')) {
        Some((w, f)) => (format!("{w}Z"), Some(f)),
        None => (t.to_string(), None),
    };
    let base = crate::report::record::parse_utc(&whole).ok_or_else(bad)?;
    let Some(frac) = frac else {
        return Ok(base);
    };
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: u32 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    Ok(base + Duration::from_nanos(u64::from(nanos)))
}

/// `t` as `--start-at` reads it, to the millisecond.
pub fn show_start_at(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let whole = crate::report::utc(SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()));
    format!("{}.{:03}Z", whole.trim_end_matches('Z'), d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::parse(" 0/1 "), Ok(Shard { index: 0, count: 1 }));
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", "0/1001", "1/3/4"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains("e.g. --shard 0/3"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_shards_split_every_arrival_and_user_exactly_once() {
        for n in 1..=7u32 {
            let shards: Vec<Shard> = (0..n).map(|index| Shard { index, count: n }).collect();
            for a in 0..100u64 {
                assert_eq!(
                    shards.iter().filter(|s| s.takes(a)).count(),
                    1,
                    "{a} of {n}"
                );
            }
            for total in [0u32, 1, 2, 5, 199, 200, 100_000] {
                let sum: u32 = shards.iter().map(|s| s.users(total)).sum();
                assert_eq!(sum, total, "{total} users over {n} shards");
                let (lo, hi) = shards
                    .iter()
                    .map(|s| s.users(total))
                    .fold((u32::MAX, 0), |(l, h), u| (l.min(u), h.max(u)));
                assert!(hi - lo <= 1, "an even split: {lo}..{hi}");
            }
            // The users a stage of 23 runs are numbered exactly 0..23 over the shards.
            let mut numbers: Vec<u64> = shards
                .iter()
                .flat_map(|s| (0..u64::from(s.users(23))).map(move |k| s.global(k)))
                .collect();
            numbers.sort_unstable();
            assert_eq!(numbers, (0..23).collect::<Vec<u64>>(), "{n} shards");
        }
    }

    #[test]
    fn start_at_is_utc_to_the_nanosecond_and_shown_to_the_millisecond() {
        let t = parse_start_at("2026-12-07T06:30:00Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_796_625_000
        );
        let f = parse_start_at("2026-12-07T06:30:00.25Z").unwrap();
        assert_eq!(f.duration_since(t).unwrap(), Duration::from_millis(250));
        assert_eq!(show_start_at(f), "2026-12-07T06:30:00.250Z");
        assert_eq!(parse_start_at(&show_start_at(f)).unwrap(), f);
        for bad in [
            "2026-12-07 06:30:00",
            "2026-12-07T06:30:00+01:00",
            "2026-12-07T06:30:00.Z",
            "2026-12-07T06:30:00.1234567890Z",
            "tomorrow",
        ] {
            let e = parse_start_at(bad).unwrap_err();
            assert!(e.contains("like 2026-12-07T06:30:00Z"), "{bad}: {e}");
        }
    }
}
