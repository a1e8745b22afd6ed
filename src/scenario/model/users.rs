//! `[users]`: the closed model — virtual users running journeys with think time, ramped along
//! a plan in multiples of the stated peak user count. Run on goose by `load::journeys`.

use std::time::Duration;

use serde::Serialize;

use super::{ser_duration, Client, RequestSpec, StageKind};

#[derive(Debug, Clone, Serialize)]
pub struct Users {
    /// The stated peak of concurrent users; plan counts written `"4x"` are multiples of it.
    pub peak: u32,
    pub plan: Vec<UserStage>,
    /// Think time, drawn uniformly in `[min, max]`: between two steps and two iterations.
    #[serde(serialize_with = "ser_duration")]
    pub think_min: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub think_max: Duration,
    /// `[users.client]`, or `[load.client]` when the users have none, or the defaults.
    pub client: Client,
    pub journeys: Vec<Journey>,
}

/// One stage of the user plan: a linear ramp from the previous count (0 at the start) or a
/// hold at a count.
#[derive(Debug, Clone, Serialize)]
pub struct UserStage {
    pub kind: StageKind,
    /// Concurrent users at the end of the stage, resolved from multiples of the peak.
    pub users: u32,
    /// As written: `"4x"` or `"200"`.
    pub users_text: String,
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
}

/// A journey: steps a user runs in order, each iteration ending at its first failed step.
#[derive(Debug, Clone, Serialize)]
pub struct Journey {
    pub name: String,
    /// Share of the users that run this journey (each user runs one journey all its life).
    pub weight: u32,
    /// Steps as requests (their `weight` is unused); `{{user}}` is the user's number and a
    /// step's captures are for the later steps of the same iteration.
    pub steps: Vec<RequestSpec>,
}

impl Users {
    /// The plan's length.
    pub fn duration(&self) -> Duration {
        self.plan.iter().map(|s| s.duration).sum()
    }

    /// The recorder's names of the steps, `journey:step`, journey by journey.
    pub fn step_names(&self) -> Vec<String> {
        step_names(&self.journeys)
    }

    /// Most users at once over the plan.
    pub fn max_users(&self) -> u32 {
        self.plan.iter().map(|s| s.users).max().unwrap_or(0)
    }
}

/// The recorder's names of `journeys`' steps, `journey:step`, journey by journey.
pub fn step_names(journeys: &[Journey]) -> Vec<String> {
    journeys
        .iter()
        .flat_map(|j| {
            j.steps
                .iter()
                .map(move |s| format!("{}:{}", j.name, s.name))
        })
        .collect()
}
