//! Protocol versions, ordered: an amendment must raise the version, and a server must never go
//! back to an older one.

use std::cmp::Ordering;
use std::fmt;

/// A protocol version: whole numbers separated by dots (`1`, `1.0`, `2.10.1`), compared number
/// by number, so `1.10` comes after `1.9`; trailing zeros do not count (`1.0` is `1`).
#[derive(Debug, Clone)]
pub struct ProtocolVersion {
    text: String,
    parts: Vec<u64>,
}

impl ProtocolVersion {
    /// Read a version, or `None` when it is not numbers separated by dots.
    ///
    /// ```
    /// use rrct::protocol::ProtocolVersion;
    /// let v = |s| ProtocolVersion::parse(s).unwrap();
    /// assert!(v("1.10") > v("1.9"));
    /// assert!(v("2") > v("1.99.3"));
    /// assert_eq!(v("1.0"), v("1"));
    /// assert!(ProtocolVersion::parse("1.0-beta").is_none());
    /// assert!(ProtocolVersion::parse("1..2").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<ProtocolVersion> {
        let parts = text
            .split('.')
            .map(|p| {
                (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse::<u64>().ok())
                    .flatten()
            })
            .collect::<Option<Vec<u64>>>()?;
        let mut significant = parts;
        while significant.len() > 1 && significant.last() == Some(&0) {
            significant.pop();
        }
        Some(ProtocolVersion {
            text: text.to_string(),
            parts: significant,
        })
    }
}

impl PartialEq for ProtocolVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for ProtocolVersion {}

impl PartialOrd for ProtocolVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ProtocolVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
