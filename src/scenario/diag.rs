//! Diagnostics about input: a place (file:line:column), the offending line, and what would be
//! accepted. Rendered like rustc's, without colour so they snapshot and read well in CI logs.
//! A very long source line (a generated scenario, minified JSON) is shown as a window around
//! the caret, cut sides marked `…`: a diagnostic stays a few lines whatever the input.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    /// The text of `line` (without its newline); empty when there is none to show.
    pub source_line: String,
    /// How many characters to underline from `column` (at least 1).
    pub width: usize,
    /// What would be accepted, or a suggestion.
    pub help: Option<String>,
}

/// Every error found in one input, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, "error")
    }
}

/// A diagnostic shown as a warning (`warning: …`): the input is valid, but look at this.
pub struct Warning<'a>(pub &'a Diagnostic);

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render(f, "warning")
    }
}

impl Diagnostic {
    fn render(&self, f: &mut fmt::Formatter<'_>, level: &str) -> fmt::Result {
        writeln!(f, "{level}: {}", self.message)?;
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(f, "{pad}--> {}:{}:{}", self.file, self.line, self.column)?;
        if !self.source_line.is_empty() {
            let (shown, lead, width) = self.excerpt();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {shown}")?;
            writeln!(f, "{pad} | {lead}{}", "^".repeat(width))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Source lines longer than this (in characters) are cut to a window of this many around the
/// caret: wide enough for any hand-written line (the snapshots show them whole).
const MAX_SHOWN: usize = 120;
/// In a cut line, how many characters of context the window keeps before the caret.
const BEFORE_CARET: usize = 40;

impl Diagnostic {
    /// The source line as shown, the text that puts the caret under `column` (tabs kept, so
    /// the caret lines up however the terminal expands them) and the underline's width.
    fn excerpt(&self) -> (String, String, usize) {
        let pad = |cs: &[char]| -> String {
            cs.iter()
                .map(|&c| if c == '\t' { '\t' } else { ' ' })
                .collect()
        };
        let chars: Vec<char> = self.source_line.chars().collect();
        let n = chars.len();
        // A column past the end (an error at the end of the line) puts the caret right after it.
        let at = self.column.saturating_sub(1).min(n);
        let width = self.width.max(1);
        if n <= MAX_SHOWN {
            return (self.source_line.clone(), pad(&chars[..at]), width);
        }
        let lo = at.saturating_sub(BEFORE_CARET).min(n - MAX_SHOWN);
        let hi = lo + MAX_SHOWN;
        let (left, right) = (if lo > 0 { "…" } else { "" }, if hi < n { "…" } else { "" });
        let shown = format!("{left}{}{right}", chars[lo..hi].iter().collect::<String>());
        // `…` is one column wide: one space for it keeps the caret on its character.
        let lead = format!("{}{}", if lo > 0 { " " } else { "" }, pad(&chars[lo..at]));
        (shown, lead, width.min(hi - at).max(1))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "\n{n} error{} found", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: &str, column: usize, width: usize) -> Diagnostic {
        Diagnostic {
            file: "f.toml".into(),
            line: 1,
            column,
            message: "bad".into(),
            source_line: line.into(),
            width,
            help: None,
        }
    }

    /// The shown line and the caret line, without the `1 | ` gutters.
    fn shown(d: &Diagnostic) -> (String, String) {
        let text = d.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let cut = |l: &str| {
            l.split_once("| ")
                .map_or(String::new(), |(_, r)| r.to_string())
        };
        (cut(lines[3]), cut(lines[4]))
    }

    /// The character under the first `^`, and how many `^`.
    fn under(d: &Diagnostic) -> (char, usize) {
        let (line, caret) = shown(d);
        let at = caret.chars().take_while(|&c| c != '^').count();
        let n = caret.chars().filter(|&c| c == '^').count();
        (line.chars().nth(at).unwrap_or(' '), n)
    }

    #[test]
    fn a_normal_line_is_shown_whole() {
        let d = diag("\ta = \"x\"", 6, 3);
        assert_eq!(shown(&d), ("\ta = \"x\"".into(), "\t    ^^^".into()));
        let exactly = "y".repeat(MAX_SHOWN);
        assert_eq!(shown(&diag(&exactly, MAX_SHOWN, 1)).0, exactly);
    }

    #[test]
    fn a_long_line_is_cut_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(100_000), "b".repeat(100_000));
        let d = diag(&line, 100_001, 1);
        let (l, _) = shown(&d);
        assert!(l.starts_with('…') && l.ends_with('…'), "{l}");
        assert_eq!(l.chars().count(), MAX_SHOWN + 2);
        assert_eq!(under(&d), ('X', 1));
        assert!(d.to_string().len() < 400, "{d}");
    }

    #[test]
    fn the_window_stops_at_the_ends_of_the_line() {
        let line = format!("X{}Y", "-".repeat(500));
        // At the start: nothing cut on the left.
        let d = diag(&line, 1, 1);
        let (l, _) = shown(&d);
        assert!(l.starts_with('X') && l.ends_with('…'));
        assert_eq!(under(&d), ('X', 1));
        // At the end, and just past it: nothing cut on the right, a full window on the left.
        let d = diag(&line, 502, 1);
        let (l, _) = shown(&d);
        assert!(l.starts_with('…') && l.ends_with('Y'));
        assert_eq!(l.chars().count(), MAX_SHOWN + 1);
        assert_eq!(under(&d), ('Y', 1));
        let (_, caret) = shown(&diag(&line, 503, 1));
        assert_eq!(
            caret.chars().count(),
            MAX_SHOWN + 2,
            "right after the last character"
        );
    }

    #[test]
    fn an_underline_longer_than_the_window_stops_at_its_edge() {
        let line = format!("{}\"{}\"", "k".repeat(300), "v".repeat(5000));
        let d = diag(&line, 301, 5002);
        let (l, caret) = shown(&d);
        assert_eq!(under(&d), ('"', MAX_SHOWN - BEFORE_CARET));
        assert_eq!(
            caret.chars().count(),
            l.chars().count() - 1,
            "up to the `…`"
        );
    }
}
