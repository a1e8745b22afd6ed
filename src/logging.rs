//! Structured logs for operators (tracing): what the harness does behind its human output —
//! every driver control call (method, path, duration, result), the read-back's summary. The
//! CLI calls [`init`] once with the count of `-v` flags.
//!
//! Off by default: without `-v` and without `RUST_LOG`, no subscriber is installed and the
//! run's output is exactly what it was (tests snapshot stderr). `-v` shows this crate's `info`
//! events, `-vv` its `debug` ones, `-vvv` its `trace`; a non-empty `RUST_LOG` (an
//! `EnvFilter` directive, `chaos=debug` or `debug` for every crate that uses tracing) replaces
//! what `-v` asked for. Logs go to stderr, one line per event, without colour.
//!
//! Must never: log a secret (callers log names, paths, statuses and durations — never a
//! header value or a body), log per load request (the hot path), or write to stdout (that is
//! the reports' and the CLI's output).

use tracing_subscriber::EnvFilter;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("RUST_LOG=`{value}` is not a valid log filter: {reason}")]
    BadFilter { value: String, reason: String },
    #[error("logging is already set up in this process")]
    AlreadySet,
}

/// The filter for `verbosity` (`-v` count) and `rust_log` (the variable's value), or `None`
/// when nothing is to be logged.
fn filter(verbosity: u8, rust_log: Option<&str>) -> Result<Option<EnvFilter>, LogError> {
    if let Some(value) = rust_log.filter(|v| !v.trim().is_empty()) {
        return EnvFilter::try_new(value)
            .map(Some)
            .map_err(|e| LogError::BadFilter {
                value: value.to_string(),
                reason: e.to_string(),
            });
    }
    let level = match verbosity {
        0 => return Ok(None),
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    Ok(Some(EnvFilter::new(format!("chaos={level}"))))
}

/// Whether [`init`] installed a subscriber (the live view then prints lines, not a bar that
/// log lines would tear).
static ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn enabled() -> bool {
    ON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set up logging for this process: see the module doc. Call once, before the run starts; a
/// second call is [`LogError::AlreadySet`] (harmless: the first setup stays).
pub fn init(verbosity: u8) -> Result<(), LogError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let Some(filter) = filter(verbosity, rust_log.as_deref())? else {
        return Ok(());
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|_| LogError::AlreadySet)?;
    ON.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_by_default_verbosity_by_count_and_rust_log_overrides() {
        assert!(filter(0, None).unwrap().is_none());
        assert!(filter(0, Some("  ")).unwrap().is_none());
        assert_eq!(filter(1, None).unwrap().unwrap().to_string(), "chaos=info");
        assert_eq!(filter(2, None).unwrap().unwrap().to_string(), "chaos=debug");
        assert_eq!(filter(5, None).unwrap().unwrap().to_string(), "chaos=trace");
        let f = filter(0, Some("chaos::verify=debug")).unwrap().unwrap();
        assert_eq!(f.to_string(), "chaos::verify=debug");
        assert_eq!(
            filter(2, Some("warn")).unwrap().unwrap().to_string(),
            "warn"
        );
        let e = filter(0, Some("chaos=loud")).unwrap_err();
        assert!(e.to_string().contains("RUST_LOG=`chaos=loud`"), "{e}");
    }
}
