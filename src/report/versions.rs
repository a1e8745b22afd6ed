//! Responses by the value of the scenario's `responses_by` header (the versions a blue/green
//! cutover moves between), as the reports show them: each value's share of every interval's
//! responses (the HTML chart), and each value's totals with when it was first and last seen
//! (summary.md). Computed from the recording's per-interval tag counts, once, for both.

use super::RunReport;
use crate::metrics::StatusCounts;

/// One value over the run.
pub struct Value {
    pub name: String,
    pub responses: u64,
    /// Start of the first and of the last interval with a response carrying it, seconds.
    pub first_s: f64,
    pub last_s: f64,
    /// Its share of each interval's responses that carried a value (None: none did).
    pub shares: Vec<Option<f64>>,
}

/// The header counted and its values in the order they were first served; `None` without
/// `responses_by` or when no response carried the header.
pub fn of(r: &RunReport) -> Option<(String, Vec<Value>)> {
    let header = r.scenario.load.responses_by.clone()?;
    let rec = &r.recording;
    if rec.tags.is_empty() {
        return None;
    }
    let iv = rec.interval.as_secs_f64();
    let per: Vec<StatusCounts> = rec
        .intervals
        .iter()
        .map(|row| {
            let mut c = StatusCounts::default();
            for cell in row {
                c.merge(&cell.tags);
            }
            c
        })
        .collect();
    let values = rec
        .tags
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = (i + 1) as u16;
            let seen: Vec<usize> = (0..per.len()).filter(|&k| per[k].get(id) > 0).collect();
            Value {
                name: name.clone(),
                responses: per.iter().map(|c| c.get(id)).sum(),
                first_s: seen.first().map_or(0.0, |&k| k as f64 * iv),
                last_s: seen.last().map_or(0.0, |&k| k as f64 * iv),
                shares: per
                    .iter()
                    .map(|c| (c.total() > 0).then(|| c.get(id) as f64 / c.total() as f64))
                    .collect(),
            }
        })
        .filter(|v: &Value| v.responses > 0)
        .collect::<Vec<Value>>();
    // In the order they were first served: the same order (and chart colours) whether the
    // recording comes from the run or is read back from report.json (which names them sorted).
    let mut values = values;
    values.sort_by(|a, b| a.first_s.total_cmp(&b.first_s).then(a.name.cmp(&b.name)));
    Some((header, values))
}
