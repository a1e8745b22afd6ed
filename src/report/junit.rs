//! `junit.xml` (quick-junit): one test suite per run, one test case per SLO (a failure carries
//! the measured value, the bound and the window), one per fault (an error when it could not be
//! injected or reverted), and one for the run itself when it was aborted or interrupted — so a
//! CI server's test view goes red for the right reason.

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{FaultStatus, RunReport, Verdict};
use crate::slo::Status;

pub fn render(r: &RunReport) -> String {
    let mut suite = TestSuite::new(format!("chaos run {}", r.scenario.name));
    suite.set_time(r.wall);
    let applied = r.applied_timeline();
    for s in &r.slo {
        let o = &s.objective;
        let window = o.window_label();
        let name = match &o.request {
            Some(req) => format!("{window} [{req}] {}", o.text),
            None => format!("{window} {}", o.text),
        };
        let measured = format!(
            "measured {} (bound {}) over window {} from {} samples",
            s.shown_value, s.shown_bound, window, s.samples
        );
        let note = s.note.as_deref().unwrap_or("");
        let status = match s.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(measured.clone());
                st.set_type("slo_breached");
                st
            }
            Status::InsufficientAllowed => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(format!(
                    "could not be judged ({note}); allowed by the scenario"
                ));
                st
            }
            Status::InsufficientData => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("could not be judged ({note})"));
                st.set_type("insufficient_data");
                st
            }
            Status::NotJudged => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(note.to_string());
                st
            }
        };
        let mut tc = TestCase::new(name, status);
        tc.set_classname(classname("slo", &window));
        // The window's length as the case's time: what the SLO was judged over.
        let (a, b) = applied.span_of(o);
        if s.status != Status::NotJudged {
            tc.set_time(b.saturating_sub(a));
        }
        // The measured value on every case, passing ones too: a CI server's test view shows
        // how close a pass was.
        tc.add_property(Property::new("measured", s.shown_value.as_str()));
        tc.add_property(Property::new("bound", s.shown_bound.as_str()));
        tc.add_property(Property::new("window", window.as_str()));
        tc.add_property(Property::new("samples", s.samples.to_string()));
        tc.set_system_out(match s.status {
            Status::NotJudged => note.to_string(),
            _ if note.is_empty() => measured,
            _ => format!("{measured}; {note}"),
        });
        suite.add_test_case(tc);
    }
    for f in &r.faults {
        let status = match f.status {
            FaultStatus::Reverted => TestCaseStatus::success(),
            FaultStatus::Skipped | FaultStatus::NotReached => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(format!("{}: {}", f.status.name(), f.note));
                st
            }
            FaultStatus::InjectFailed | FaultStatus::Unconfirmed | FaultStatus::RevertFailed => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(format!("{}: {}", f.status.name(), f.note));
                st.set_type("fault_error");
                st
            }
        };
        let mut tc = TestCase::new(format!("fault {} ({})", f.name, f.kind), status);
        tc.set_classname("fault");
        if let (Some(a), Some(b)) = (f.injected_at_s, f.reverted_at_s) {
            if let Ok(d) = std::time::Duration::try_from_secs_f64((b - a).max(0.0)) {
                tc.set_time(d);
            }
        }
        suite.add_test_case(tc);
    }
    if matches!(r.verdict, Verdict::Aborted | Verdict::Interrupted) {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
        st.set_message(r.reason());
        st.set_type(if r.verdict == Verdict::Aborted {
            "aborted"
        } else {
            "interrupted"
        });
        let mut tc = TestCase::new("run completed", st);
        tc.set_classname("run");
        tc.set_time(r.wall);
        suite.add_test_case(tc);
    }
    let mut report = Report::new("chaos");
    report.set_time(r.wall);
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot serialize the JUnit report: {e} -->\n"))
}

/// A classname CI servers keep whole: Jenkins splits a classname at its last dot into package
/// and class, so `slo.baseline[10s..-1s]` would break. The group and the window are joined
/// by a space, and dots inside the window (trims, fault names) become `‥`/`·`.
fn classname(group: &str, window: &str) -> String {
    format!("{group} {}", window.replace("..", "‥").replace('.', "·"))
}
