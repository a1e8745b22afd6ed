//! Writing a run's reports into its directory: report.json, junit.xml, report.html and
//! summary.md (and the summary appended to `GITHUB_STEP_SUMMARY` when set). The renderers are
//! pure; this is the only file of the module that touches the file system.

use std::path::{Path, PathBuf};

use super::RunReport;

/// A report file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the run directory {path}: {source}")]
pub struct WriteError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Write report.json, junit.xml, report.html and summary.md (and append the summary to `GITHUB_STEP_SUMMARY` when set).
/// Returns the summary text.
pub fn write_reports(dir: &Path, rep: &RunReport) -> Result<String, WriteError> {
    let werr = |path: PathBuf, source| WriteError {
        path: path.display().to_string(),
        source,
    };
    let json = super::json::render(rep);
    let path = dir.join("report.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
    // Written whole or not at all (a temporary file renamed into place): a run killed while
    // writing leaves no half report.json for `chaos merge` or `compare` to misread.
    let tmp = dir.join(".report.json.tmp");
    std::fs::write(&tmp, text).map_err(|e| werr(tmp.clone(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| werr(path, e))?;
    let path = dir.join("junit.xml");
    std::fs::write(&path, super::junit::render(rep)).map_err(|e| werr(path, e))?;
    let path = dir.join("report.html");
    std::fs::write(&path, super::html::render(rep)).map_err(|e| werr(path, e))?;
    let summary = super::markdown::render(rep);
    let path = dir.join("summary.md");
    std::fs::write(&path, &summary).map_err(|e| werr(path, e))?;
    // The CI job summary is a courtesy: a path the job cannot write is said, not fatal (the
    // run's verdict and its files stand).
    if let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write as _;
        let path = PathBuf::from(p);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(summary.as_bytes()));
        if let Err(e) = appended {
            crate::cli::output::err(&format!(
                "warning: cannot append the summary to GITHUB_STEP_SUMMARY ({}): {e}",
                path.display()
            ));
        }
    }
    Ok(summary)
}
