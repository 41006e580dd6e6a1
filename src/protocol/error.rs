//! Protocol errors located in the source text, printed the way compilers print them
//! (`FILE:LINE:COL: message`) so editors and CI logs can jump straight to the offending value.

use std::fmt;
use std::ops::Range;

/// One problem in a protocol file. Line and column are 1-based; the column counts characters
/// (not bytes), as editors do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{col}: {message}")]
pub struct ProtocolError {
    pub origin: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem found in a protocol file, in source order. Never empty when returned by
/// [`super::parse`]; printed one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolErrors(pub Vec<ProtocolError>);

impl ProtocolErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ProtocolError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ProtocolErrors {
    type Item = &'a ProtocolError;
    type IntoIter = std::slice::Iter<'a, ProtocolError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ProtocolErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProtocolErrors {}

/// A phase-2 finding before it is turned into line and column: the byte span it points at.
pub(crate) type Finding = (Range<usize>, String);

/// Locate findings in `source` and sort them by position (stable, so findings at one spot keep
/// the order in which validation found them).
pub(crate) fn locate(source: &str, origin: &str, findings: Vec<Finding>) -> ProtocolErrors {
    let mut errors: Vec<ProtocolError> = findings
        .into_iter()
        .map(|(span, message)| at(source, origin, span.start, message))
        .collect();
    errors.sort_by_key(|e| (e.line, e.col));
    ProtocolErrors(errors)
}

/// A TOML syntax or shape error (unknown key, wrong type, missing key) as a single-line error.
/// Errors without a span (rare; e.g. a missing top-level key) point at 1:1.
pub(crate) fn from_toml(source: &str, origin: &str, error: &toml::de::Error) -> ProtocolErrors {
    let start = error.span().map_or(0, |span| span.start);
    let message = error
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    ProtocolErrors(vec![at(source, origin, start, message)])
}

fn at(source: &str, origin: &str, offset: usize, message: String) -> ProtocolError {
    let (line, col) = line_col(source, offset);
    ProtocolError {
        origin: origin.to_string(),
        line,
        col,
        message,
    }
}

/// 1-based line and character column of byte `offset` (clamped into the text).
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(source.len());
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    let before = &source[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let s = "a = 1\nbé = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 4), (1, 5));
        assert_eq!(line_col(s, 6), (2, 1));
        // `=` after the two-byte `é` is the 4th character of line 2.
        assert_eq!(line_col(s, 10), (2, 4));
        assert_eq!(line_col(s, 1000), (3, 1));
        // Inside a multi-byte character: clamps back to its start.
        assert_eq!(line_col(s, 8), (2, 2));
    }

    #[test]
    fn display_joins_errors_with_newlines() {
        let errors = locate(
            "x\ny\n",
            "p.toml",
            vec![(2..3, "second".into()), (0..1, "first".into())],
        );
        assert_eq!(errors.to_string(), "p.toml:1:1: first\np.toml:2:1: second");
    }
}
