//! What an allocation leaves behind: the [`AllocationRecord`] the store keeps and every analysis
//! reads, with its typed parts ([`Timestamp`], [`Draw`]).
//!
//! The record is built by the enrolment service from a [`Decision`](super::Decision) and read
//! back by the store; the simulator builds the same record for its in-memory trials. Values are
//! parsed once, where they enter (the store's read, the service's decision), and carried typed:
//! nobody slices a timestamp's text to find its day.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A moment as rrct records it: UTC to the microsecond, written in RFC 3339 with six decimals
/// and `Z` (`2024-03-01T12:00:00.000000Z`), the one text form on both backends, whose
/// lexicographic order is time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current moment (callers record it; the randomisation itself never reads the clock).
    pub fn now() -> Timestamp {
        Timestamp::from(Utc::now())
    }

    /// Read the stored text form (any RFC 3339 moment, kept to the microsecond).
    ///
    /// ```
    /// use rrct::randomise::record::Timestamp;
    /// let t = Timestamp::parse("2024-03-01T12:00:00.250000Z").unwrap();
    /// assert_eq!(t.to_string(), "2024-03-01T12:00:00.250000Z");
    /// assert_eq!(t.date().to_string(), "2024-03-01");
    /// assert!(Timestamp::parse("2024-03-01").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Timestamp::from(t.with_timezone(&Utc)))
    }

    /// The UTC calendar day of the moment.
    pub fn date(&self) -> NaiveDate {
        self.0.date_naive()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Kept to the microsecond, as it is stored.
    fn from(t: DateTime<Utc>) -> Timestamp {
        let micros = t.timestamp_micros();
        Timestamp(DateTime::from_timestamp_micros(micros).unwrap_or(t))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 moment")))
    }
}

/// What an allocation took from its stratum's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Draw {
    /// A block slot or sequence number, unique within the stratum.
    Slot,
    /// A restricted patient's draw beside the stratum's block; no slot is taken.
    Restricted,
    /// A cluster member given its cluster's arm, without a draw.
    Inherited,
}

impl Draw {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Draw::Slot => "slot",
            Draw::Restricted => "restricted",
            Draw::Inherited => "inherited",
        }
    }

    /// From the stored text.
    ///
    /// ```
    /// use rrct::randomise::record::Draw;
    /// assert_eq!(Draw::parse("inherited"), Some(Draw::Inherited));
    /// assert_eq!(Draw::parse("slots"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Draw> {
        [Draw::Slot, Draw::Restricted, Draw::Inherited]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

impl fmt::Display for Draw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the stored text, so `record.draw == "slot"` reads as it is written.
impl PartialEq<&str> for Draw {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One allocation as recorded. The fields are in the order of the store's columns (rows are
/// read as JSON arrays, element by element into these fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub trial_id: String,
    pub randomisation_number: i64,
    pub record_id: String,
    pub subject: String,
    pub site_code: String,
    pub arm: String,
    pub stratum: String,
    pub block_number: i64,
    pub block_size: i64,
    pub block_position: i64,
    pub protocol_version: String,
    pub request_sha256: String,
    pub allocated_at: Timestamp,
    /// The decision's audit detail (JSON), when the procedure gives one.
    pub detail: Option<String>,
    /// JSON array of the arm ids the patient was eligible for, when restricted.
    pub eligible_arms: Option<String>,
    /// The cluster (its unit's value), in a cluster trial.
    pub cluster: Option<String>,
    pub draw: Draw,
}

impl AllocationRecord {
    /// The randomisation day: the UTC date of the allocation.
    pub fn randomised_on(&self) -> NaiveDate {
        self.allocated_at.date()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_the_stored_text_and_order() {
        let a = Timestamp::parse("2024-03-01T23:59:59.999999Z").unwrap();
        let b = Timestamp::parse("2024-03-02T00:00:00.000000Z").unwrap();
        assert!(a < b);
        assert_eq!(a.date().to_string(), "2024-03-01");
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            "\"2024-03-02T00:00:00.000000Z\""
        );
        let back: Timestamp = serde_json::from_str("\"2024-03-02T00:00:00.000000Z\"").unwrap();
        assert_eq!(back, b);
        // Nanoseconds are not kept: what is stored is what is read back.
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse(&now.to_string()), Some(now));
    }

    #[test]
    fn draws_read_and_compare_as_their_text() {
        for d in [Draw::Slot, Draw::Restricted, Draw::Inherited] {
            assert_eq!(Draw::parse(d.as_str()), Some(d));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.as_str())
            );
        }
        assert!(Draw::Slot == "slot");
    }
}
