//! `[abort]`: conditions that end the run early — faults reverted at once, exit 3 — when the
//! service is hurt beyond what the experiment may cost, e.g.
//! `when = ["errors > 50% for 10s", "p99 > 5s for 30s"]`. Any live metric of the SLO language
//! (latency quantiles, max, errors, throughput, not_sent, retry_rate, amplification,
//! retries_exhausted), judged at each tick over the responses of the last `for` (a sliding
//! window), with the samples an SLO would need.

use super::keys;
use super::Ctx;
use crate::scenario::model::{AbortCondition, Metric};
use crate::scenario::node::Node;
use crate::scenario::values;

const HELP: &str = "`<metric> <op> <value> for <duration>`, judged over the last <duration> of responses: e.g. \"errors > 50% for 10s\", \"p99 > 5s for 30s\", \"amplification > 2 for 20s\"";

pub(super) fn abort(cx: &mut Ctx<'_>, n: &Node) -> Vec<AbortCondition> {
    let mut out = Vec::new();
    let Some(t) = cx.table(n, "[abort]") else {
        return out;
    };
    t.check_keys(cx, keys::ABORT, "in [abort]");
    let Some(list) = t.get("when") else {
        return out;
    };
    let Some(items) = cx.array(list, "when") else {
        return out;
    };
    for item in items {
        let Some(text) = cx.string(item, "an abort condition") else {
            continue;
        };
        let Some((expr, sustain)) = text.rsplit_once(" for ") else {
            cx.err(
                &item.span,
                &format!("abort condition \"{text}\" has no `for <duration>`"),
                Some(HELP),
            );
            continue;
        };
        let sustain = match values::duration(sustain) {
            Ok(d) => d,
            Err(b) => {
                cx.bad(item, b);
                continue;
            }
        };
        match values::slo_expr(expr) {
            Ok((Metric::LostWrites | Metric::Rpo | Metric::Recovery, _, _)) => cx.err(
                &item.span,
                &format!(
                    "`{}` is known only after the run; abort conditions watch what is measured live",
                    expr.trim()
                ),
                Some(HELP),
            ),
            Ok((metric, op, bound)) => out.push(AbortCondition {
                text: text.trim().to_string(),
                metric,
                op,
                bound,
                sustain,
            }),
            Err(b) => cx.bad(item, b),
        }
    }
    out
}
