//! Scenario files: loading, parsing, validation diagnostics, the shipped scenarios, the schema.
//!
//! Raw bytes go in, either a validated [`Scenario`] or a list of [`Diagnostic`]s comes out — every
//! error in the file, each naming file:line:column, showing the line and saying what would be
//! accepted. Command-line overrides (`--set`, `--env`, see [`params`]) are applied to the parsed
//! tree first and judged by the same rules. This module never panics on input and never touches
//! the network or a target: it is all that `chaos check` runs.

pub mod builtin;
pub mod diag;
mod json;
pub mod model;
pub(crate) mod node;
pub mod params;
pub mod schema;
pub mod validate;
pub(crate) mod values;

pub use diag::{Diagnostic, Diagnostics, Warning};
pub use model::*;
pub use params::{Applied, EnvMode, Params, Unknown, Zones};

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A path (it has a `/` or ends in .toml/.json) that does not exist: never a fall-back to a
    /// shipped scenario of the same name.
    #[error("no such file `{arg}`{hint}")]
    NoSuchFile { arg: String, hint: String },
    /// A bare name that is no shipped scenario.
    #[error("no shipped scenario `{arg}`{hint} (shipped: {known}); a scenario file is named by a path: it has a `/` or ends in .toml or .json")]
    NotFound {
        arg: String,
        hint: String,
        known: String,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// True if `arg` names a file rather than a shipped scenario.
pub fn is_path(arg: &str) -> bool {
    arg.contains('/')
        || arg.contains(std::path::MAIN_SEPARATOR)
        || arg.ends_with(".toml")
        || arg.ends_with(".json")
}

/// [`load_with`] with the default parameters: every `${env:…}` required, zones of the sandbox.
pub fn load(arg: &str) -> Result<Scenario, LoadError> {
    load_with(arg, &Params::default())
}

/// Load a scenario from a path, or by the name of a shipped scenario (`az-outage`).
///
/// A path (it contains a `/` or ends in `.toml`/`.json`) must exist. A bare name is a shipped
/// scenario; only if no shipped scenario has that name is a file of that name in the current
/// directory read (`./NAME` says "the file" explicitly).
pub fn load_with(arg: &str, params: &Params) -> Result<Scenario, LoadError> {
    let path = std::path::Path::new(arg);
    let shipped = if is_path(arg) {
        None
    } else {
        builtin::get(arg)
    };
    if let Some(text) = shipped {
        let file = format!("scenarios/{arg}.toml");
        let mut s = parse_full(&file, text, &env_var, None, params).map_err(LoadError::Invalid)?;
        s.source = format!("builtin:{arg}");
        return Ok(s);
    }
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: arg.to_string(),
            source,
        })?;
        let text = text_of(arg, &bytes).map_err(LoadError::Invalid)?;
        return parse_full(arg, text, &env_var, path.parent(), params).map_err(LoadError::Invalid);
    }
    if path.exists() {
        return Err(LoadError::Io {
            path: arg.to_string(),
            source: std::io::Error::other("it is a directory, not a scenario file"),
        });
    }
    Err(not_found(arg))
}

/// The error for a scenario that is neither a file nor a shipped name, with the likeliest fix.
fn not_found(arg: &str) -> LoadError {
    let names = builtin::names();
    let hint = not_found_hint(arg, &names, &|n| {
        format!("the shipped scenario `{n}` (run `chaos run {n}`)")
    });
    if is_path(arg) {
        LoadError::NoSuchFile {
            arg: arg.to_string(),
            hint,
        }
    } else {
        LoadError::NotFound {
            arg: arg.to_string(),
            hint,
            known: names.join(", "),
        }
    }
}

/// The likeliest fix for `arg`, which names neither a file nor one of the shipped `names`
/// (scenarios, or target files): `; did you mean …?`, or nothing. A bare name gets the closest
/// shipped name, ignoring case; a path gets itself with an extension when that file exists
/// (`scenarios/az-outage` → `.toml`), else the shipped one its stem is closest to, as
/// `shipped(name)` words it.
pub(crate) fn not_found_hint(
    arg: &str,
    names: &[&str],
    shipped: &dyn Fn(&str) -> String,
) -> String {
    let closest = |name: &str| validate::did_you_mean(&name.to_lowercase(), names.iter().copied());
    if !is_path(arg) {
        return closest(arg)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
    }
    let path = std::path::Path::new(arg);
    let with_ext = ["toml", "json"]
        .iter()
        .map(|e| path.with_extension(e))
        .find(|p| path.extension().is_none() && p.is_file());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_string());
    match (with_ext, closest(&stem)) {
        (Some(p), _) => format!("; did you mean `{}`?", p.display()),
        (None, Some(n)) => format!("; did you mean {}?", shipped(n)),
        (None, None) => String::new(),
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

/// Parse another kind of document (a target file: TOML, or JSON) from raw bytes and validate it
/// with `f`, with a scenario's diagnostics (file:line:col, the line, what would be accepted).
/// No `${env:…}`, no `--set`: the document is taken as written.
pub(crate) fn parse_doc<T>(
    file: &str,
    bytes: &[u8],
    f: impl FnOnce(&mut validate::Ctx<'_>, &node::Node) -> Option<T>,
) -> Result<(T, Vec<Diagnostic>), Diagnostics> {
    let text = text_of(file, bytes)?;
    let flags = params::Flags::parse(&Params::default(), text.len());
    let no_env = |_: &str| None;
    let input = validate::Input {
        file,
        text,
        env: &no_env,
        base_dir: None,
        mode: EnvMode::Require,
        zones: None,
        flags: &flags,
    };
    let tree = if validate::looks_like_json(file, text) {
        json::parse(text)
    } else {
        node::from_toml(text)
    };
    match tree {
        Ok(root) => validate::validate_doc(&input, &root, f).map_err(Diagnostics),
        Err(errs) => Err(Diagnostics(validate::syntax_diagnostics(&input, &errs))),
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
    parse_full(file, text, env, base_dir, &Params::default())
}

/// Parse, apply the overrides of `params`, and validate. `env` is the process environment (or a
/// test's); it is read only for names `--env` does not give, and only if `params.process_env`.
pub fn parse_full(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: Option<&std::path::Path>,
    params: &Params,
) -> Result<Scenario, Diagnostics> {
    let mut flags = params::Flags::parse(params, text.len());
    let no_env = |_: &str| None;
    let input = |flags| validate::Input {
        file,
        text,
        env: if params.process_env { env } else { &no_env },
        base_dir,
        mode: params.mode,
        zones: params.zones.as_ref(),
        flags,
    };
    let tree = if validate::looks_like_json(file, text) {
        json::parse(text)
    } else {
        node::from_toml(text)
    };
    match tree {
        Ok(mut root) => {
            flags.apply(&mut root);
            let mut s = validate::validate(&input(&flags), &root).map_err(Diagnostics)?;
            s.params.set = params.set.clone();
            Ok(s)
        }
        Err(errs) => Err(Diagnostics(validate::syntax_diagnostics(
            &input(&flags),
            &errs,
        ))),
    }
}
