//! `junit.xml` (quick-junit): one test suite per run, one test case per SLO (a failure carries
//! the measured value, the bound and the window), one per fault (an error when it could not be
//! injected or reverted), and one for the run itself when it was aborted or interrupted — so a
//! CI server's test view goes red for the right reason.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{FaultStatus, RunReport, Verdict};
use crate::slo::Status;

pub fn render(r: &RunReport) -> String {
    let mut suite = TestSuite::new(format!("chaos run {}", r.scenario.name));
    suite.set_time(r.wall);
    for s in &r.slo {
        let o = &s.objective;
        let window = o.window_label();
        let name = match &o.request {
            Some(req) => format!("{window} [{req}] {}", o.text),
            None => format!("{window} {}", o.text),
        };
        let status = match s.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!(
                    "measured {} (bound {}) over window {} from {} samples",
                    s.shown_value, s.shown_bound, window, s.samples
                ));
                st.set_type("slo_breached");
                st
            }
            Status::InsufficientAllowed => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(format!(
                    "insufficient data in window {window} (allowed by the scenario): {}",
                    s.note.as_deref().unwrap_or("")
                ));
                st
            }
            Status::InsufficientData => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!(
                    "insufficient data in window {}: {}",
                    window,
                    s.note.as_deref().unwrap_or("")
                ));
                st.set_type("insufficient_data");
                st
            }
        };
        let mut tc = TestCase::new(name, status);
        tc.set_classname(format!("slo.{window}"));
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
            FaultStatus::InjectFailed | FaultStatus::RevertFailed => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(format!("{}: {}", f.status.name(), f.note));
                st.set_type("fault_error");
                st
            }
        };
        let mut tc = TestCase::new(format!("fault {} ({})", f.name, f.kind), status);
        tc.set_classname("fault");
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
        suite.add_test_case(tc);
    }
    let mut report = Report::new("chaos");
    report.set_time(r.wall);
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot serialize the JUnit report: {e} -->\n"))
}
