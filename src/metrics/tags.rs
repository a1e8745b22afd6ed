//! Responses counted by a value they carry, as the scenario names it (`[load] responses_by =
//! "x-app-version"`: a response header): the versions a blue/green cutover moves between, per
//! interval. The engine turns each final response's value into a small id here ([`Tags::id`]);
//! a [`super::Sample`] carries the id (0: no value) and every [`super::Stats`] counts by id, so
//! the recorder's hot path stays free of strings. A finished recording names the ids
//! ([`super::Recording::tags`]); report.json writes the names, never the ids.
//!
//! At most [`MAX_VALUES`] distinct values are told apart; the rest are counted together as
//! [`OTHER`] (a header carrying a request id must not grow a run's memory).

use std::sync::Mutex;

/// Distinct values told apart; beyond them, every new value counts as [`OTHER`].
pub const MAX_VALUES: usize = 15;
/// The name of the values past the first [`MAX_VALUES`].
pub const OTHER: &str = "(other)";

/// The values seen so far, in order of first appearance: id k names `values[k - 1]`.
#[derive(Debug, Default)]
pub struct Tags {
    values: Mutex<Vec<Vec<u8>>>,
}

impl Tags {
    /// The id of `value` (1-based), given one the first time it is seen.
    pub fn id(&self, value: &[u8]) -> u8 {
        let mut v = self.values.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = v.iter().position(|x| x == value) {
            return (i + 1) as u8;
        }
        if v.len() < MAX_VALUES {
            v.push(value.to_vec());
            return v.len() as u8;
        }
        (MAX_VALUES + 1) as u8
    }

    /// The names of the ids, in id order (`[OTHER]` last when values were folded into it).
    pub fn names(&self) -> Vec<String> {
        let v = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = v
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        if out.len() == MAX_VALUES {
            out.push(OTHER.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_by_first_appearance_and_the_rest_folded_into_other() {
        let t = Tags::default();
        assert_eq!(t.id(b"v1"), 1);
        assert_eq!(t.id(b"v2"), 2);
        assert_eq!(t.id(b"v1"), 1);
        for i in 0..40 {
            t.id(format!("x{i}").as_bytes());
        }
        assert_eq!(t.id(b"late"), (MAX_VALUES + 1) as u8);
        let names = t.names();
        assert_eq!(names.len(), MAX_VALUES + 1);
        assert_eq!(&names[..2], ["v1", "v2"]);
        assert_eq!(names[MAX_VALUES], OTHER);
    }
}
