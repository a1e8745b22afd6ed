//! The recorder's data: outcomes, samples, per-interval statistics and their aggregation.
//!
//! One [`Sample`] per logical request (retries included) flows from the load engine through a
//! [`SampleSink`] to the recorder task ([`recorder::spawn`]), whose [`Recorder`] buckets it by
//! *intended* send time into intervals and by request name. Nothing here knows about faults: windows are just time ranges handed in by the SLO code.
//! Besides outcome classes, each interval counts final HTTP statuses one by one
//! ([`responses::StatusCounts`]), and a recording keeps the first few failed responses of each
//! request ([`responses::FailedResponse`]). With `[load] responses_by`, each interval also counts
//! responses by the value they carry ([`tags`]).

pub mod hist;
pub mod recorder;
pub mod responses;
pub mod tags;
#[cfg(test)]
mod tests;

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub use recorder::{Recorder, RecorderHandle, Recording, SampleSink, Tick};
pub use responses::{FailedResponse, StatusCounts};

/// The final outcome of a logical request (after its retries). The order is that of the
/// positional `outcomes` arrays in report.json's histograms: new outcomes go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A response with status < 400, or, for a request with `expect`, a response it accepts
    /// (an expected 404 is `ok`).
    Ok,
    Http4xx,
    Http5xx,
    /// No complete response within the client timeout.
    Timeout,
    /// The TCP (or TLS) connection could not be established.
    ConnectError,
    /// The connection broke mid-request or mid-response.
    Reset,
    /// Never sent: it could not start before its timeout (max_in_flight saturated), or it needed
    /// a captured value that no response had provided yet.
    NotSent,
    /// A response below 400 that the request's `expect` rejects: a status not listed, or a
    /// body check that failed. (A rejected 4xx/5xx keeps its class.)
    Unexpected,
}

impl Outcome {
    pub const COUNT: usize = 8;
    pub const ALL: [Outcome; Outcome::COUNT] = [
        Outcome::Ok,
        Outcome::Http4xx,
        Outcome::Http5xx,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::Reset,
        Outcome::NotSent,
        Outcome::Unexpected,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Http4xx => "http_4xx",
            Outcome::Http5xx => "http_5xx",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::Reset => "reset",
            Outcome::NotSent => "not_sent",
            Outcome::Unexpected => "unexpected",
        }
    }

    /// The inverse of [`Outcome::name`].
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == name)
    }

    pub fn from_status(status: u16) -> Outcome {
        match status {
            0..=399 => Outcome::Ok,
            400..=499 => Outcome::Http4xx,
            _ => Outcome::Http5xx,
        }
    }
}

/// Attempts are counted up to this many (more are folded into the last bucket).
pub const MAX_ATTEMPTS: usize = 10;

/// What the engine reports for one logical request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Index into the scenario's request list.
    pub request: u16,
    /// Intended send time, as an offset from the start of the run. Decides the interval.
    pub intended: Duration,
    /// From the intended send time to the final response (µs): the latency a user saw,
    /// coordinated omission included. 0 for `NotSent`.
    pub latency_us: u64,
    /// From the first actual send to the final response (µs). 0 for `NotSent`.
    pub service_us: u64,
    /// How late the first attempt left, relative to its intended time (µs): scheduler delay plus
    /// any wait for a `max_in_flight` slot.
    pub lateness_us: u64,
    pub outcome: Outcome,
    /// The last attempt's HTTP status; 0 when it got no response (and for `NotSent`).
    pub status: u16,
    /// Attempts made (0 for `NotSent`).
    pub attempts: u8,
    /// Failed after using every attempt the policy allowed (retries exhausted), or after the
    /// retry budget refused a retry.
    pub exhausted: bool,
    /// The final response's value of the scenario's `responses_by` header, as a [`tags`] id
    /// (0: none, or no response).
    pub tag: u8,
}

/// Statistics of one interval (or a window, once merged) for one request name, or all.
#[derive(Debug, Clone)]
pub struct Stats {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lateness: Histogram<u64>,
    pub outcomes: [u64; Outcome::COUNT],
    /// `attempts[k]` = logical requests that made k attempts (0 = not sent).
    pub attempts: [u64; MAX_ATTEMPTS + 1],
    pub exhausted: u64,
    /// Final responses by HTTP status.
    pub statuses: StatusCounts,
    /// Final responses by [`tags`] id (the same sorted small-key counts as statuses).
    pub tags: StatusCounts,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: hist::new_hist(),
            service: hist::new_hist(),
            lateness: hist::new_hist(),
            outcomes: [0; Outcome::COUNT],
            attempts: [0; MAX_ATTEMPTS + 1],
            exhausted: 0,
            statuses: StatusCounts::default(),
            tags: StatusCounts::default(),
        }
    }
}

impl Stats {
    /// The hot path: called once per logical request, by the recorder task only.
    #[inline]
    pub fn record(&mut self, s: &Sample) {
        self.outcomes[s.outcome.index()] += 1;
        self.attempts[(s.attempts as usize).min(MAX_ATTEMPTS)] += 1;
        self.exhausted += u64::from(s.exhausted);
        self.statuses.add(s.status, 1);
        self.tags.add(u16::from(s.tag), 1);
        if s.outcome != Outcome::NotSent {
            hist::record(&mut self.latency, s.latency_us);
            hist::record(&mut self.service, s.service_us);
            hist::record(&mut self.lateness, s.lateness_us);
        }
    }

    pub fn add(&mut self, o: &Stats) {
        hist::add(&mut self.latency, &o.latency);
        hist::add(&mut self.service, &o.service);
        hist::add(&mut self.lateness, &o.lateness);
        for (a, b) in self.outcomes.iter_mut().zip(o.outcomes) {
            *a += b;
        }
        for (a, b) in self.attempts.iter_mut().zip(o.attempts) {
            *a += b;
        }
        self.exhausted += o.exhausted;
        self.statuses.merge(&o.statuses);
        self.tags.merge(&o.tags);
    }

    /// Logical requests scheduled (every outcome, `not_sent` included).
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    pub fn count(&self, o: Outcome) -> u64 {
        self.outcomes[o.index()]
    }

    /// Requests actually sent (at least one attempt).
    pub fn sent(&self) -> u64 {
        self.requests() - self.count(Outcome::NotSent)
    }

    /// Failed logical requests (everything but `ok`, `not_sent` included).
    pub fn errors(&self) -> u64 {
        self.requests() - self.count(Outcome::Ok)
    }

    /// Total attempts made.
    pub fn total_attempts(&self) -> u64 {
        self.attempts
            .iter()
            .enumerate()
            .map(|(k, n)| k as u64 * n)
            .sum()
    }

    /// Logical requests that needed more than one attempt.
    pub fn retried(&self) -> u64 {
        self.attempts[2..].iter().sum()
    }

    fn ratio(n: u64, d: u64) -> f64 {
        if d == 0 {
            0.0
        } else {
            n as f64 / d as f64
        }
    }

    pub fn error_rate(&self) -> f64 {
        Self::ratio(self.errors(), self.requests())
    }
    pub fn not_sent_rate(&self) -> f64 {
        Self::ratio(self.count(Outcome::NotSent), self.requests())
    }
    /// Sent / scheduled (1.0 when nothing was scheduled).
    pub fn throughput(&self) -> f64 {
        if self.requests() == 0 {
            1.0
        } else {
            Self::ratio(self.sent(), self.requests())
        }
    }
    pub fn retry_rate(&self) -> f64 {
        Self::ratio(self.retried(), self.sent())
    }
    /// Attempts / sent logical requests (1.0 = no retries).
    pub fn amplification(&self) -> f64 {
        if self.sent() == 0 {
            1.0
        } else {
            Self::ratio(self.total_attempts(), self.sent())
        }
    }
    pub fn exhausted_rate(&self) -> f64 {
        Self::ratio(self.exhausted, self.requests())
    }
}
