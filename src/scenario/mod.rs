//! Scenario files: loading, parsing, validation diagnostics, the shipped scenarios, the schema.
//!
//! Raw bytes go in, either a validated [`Scenario`] or a list of [`Diagnostic`]s comes out — every
//! error in the file, each naming file:line:column, showing the line and saying what would be
//! accepted. This module never panics on input and never touches the network or a target: it is
//! all that `chaos check` runs.

pub mod builtin;
pub mod diag;
mod json;
pub mod model;
mod node;
pub mod schema;
pub mod validate;
pub(crate) mod values;

pub use diag::{Diagnostic, Diagnostics};
pub use model::*;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no scenario file `{arg}` and no shipped scenario of that name (shipped: {known})")]
    NotFound { arg: String, known: String },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Load a scenario from a path, or by the name of a shipped scenario (`az-outage`).
/// A path that exists wins over a shipped name.
pub fn load(arg: &str) -> Result<Scenario, LoadError> {
    let path = std::path::Path::new(arg);
    if path.exists() {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: arg.to_string(),
            source,
        })?;
        let text = text_of(arg, &bytes).map_err(LoadError::Invalid)?;
        return parse_with(arg, text, &env_var, path.parent()).map_err(LoadError::Invalid);
    }
    match builtin::get(arg) {
        Some(text) => {
            let name = arg.strip_suffix(".toml").unwrap_or(arg);
            let mut s =
                parse_str(&format!("scenarios/{name}.toml"), text).map_err(LoadError::Invalid)?;
            s.source = format!("builtin:{name}");
            Ok(s)
        }
        None => Err(LoadError::NotFound {
            arg: arg.to_string(),
            known: builtin::names().join(", "),
        }),
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Parse raw bytes: invalid UTF-8 is a diagnostic, not a panic.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Scenario, Diagnostics> {
    parse_str(file, text_of(file, bytes)?)
}

fn text_of<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostics> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let upto = &bytes[..e.valid_up_to()];
            let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
            let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            Err(Diagnostics(vec![Diagnostic {
                file: file.to_string(),
                line,
                column: col,
                message: "the file is not valid UTF-8".to_string(),
                source_line: String::new(),
                width: 1,
                help: Some("a scenario is a UTF-8 TOML (or JSON) text file".to_string()),
            }]))
        }
    }
}

/// Parse and validate scenario text, with `${env:VAR}` read from the process environment and
/// relative paths relative to the current directory. JSON if the file name ends in `.json` or
/// the text starts with `{`, TOML otherwise.
pub fn parse_str(file: &str, text: &str) -> Result<Scenario, Diagnostics> {
    parse_with(file, text, &env_var, None)
}

/// [`parse_str`] with the environment lookup and base directory given (tests pass their own).
pub fn parse_with(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: Option<&std::path::Path>,
) -> Result<Scenario, Diagnostics> {
    let input = validate::Input {
        file,
        text,
        env,
        base_dir,
    };
    let tree = if validate::looks_like_json(file, text) {
        json::parse(text)
    } else {
        node::from_toml(text)
    };
    match tree {
        Ok(root) => validate::validate(&input, &root).map_err(Diagnostics),
        Err(errs) => Err(Diagnostics(validate::syntax_diagnostics(&input, &errs))),
    }
}
