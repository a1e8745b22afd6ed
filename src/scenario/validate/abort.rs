//! `[abort]`: conditions that end the run early — faults reverted at once, exit 3 — when the
//! service is hurt beyond what the experiment may cost, e.g.
//! `when = ["errors > 50% for 10s", "p99 > 5s for 30s"]`. They are judged live on what the
//! progress view measures each tick: the error rate and the p99 of the last tick's responses.

use super::keys;
use super::Ctx;
use crate::scenario::model::{AbortCondition, Metric};
use crate::scenario::node::Node;
use crate::scenario::values;

const HELP: &str = "`<errors|p99> <op> <value> for <duration>`, e.g. \"errors > 50% for 10s\" or \"p99 > 5s for 30s\"";

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
            Ok((metric @ (Metric::Errors | Metric::Latency(_)), op, bound))
                if metric == Metric::Errors || metric == Metric::Latency(0.99) =>
            {
                out.push(AbortCondition {
                    text: text.trim().to_string(),
                    metric,
                    op,
                    bound,
                    sustain,
                })
            }
            Ok(_) => cx.err(
                &item.span,
                &format!(
                    "abort conditions watch `errors` and `p99` only, not \"{}\"",
                    expr.trim()
                ),
                Some(HELP),
            ),
            Err(b) => cx.bad(item, b),
        }
    }
    out
}
