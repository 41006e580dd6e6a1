//! Pseudonyms for personal identity numbers, made by the key holder — the register host —
//! before any data reach rrct: every register that holds the same key delivers the same
//! pseudonym for one person, and rrct never sees the number (it refuses one in every id).
//!
//! A pseudonym is HMAC-SHA-256 (RFC 2104) under the key of the number's canonical twelve
//! digits `YYYYMMDDNNNC` ([`PersonalIdentityNumber`]), so every spelling of one number gives
//! one pseudonym. Its 32 bytes are written as `p-` and 64 lower-case letters: the hex digits
//! `0`–`9`, `a`–`f` of the MAC written `a`–`p` instead. The text therefore holds no digit, so
//! it can never look like a personal identity number to [`crate::identity`], and at 66
//! characters it is a valid id (see [`crate::identity::MAX_ID_LEN`]). Anyone holding the key
//! can recompute one with standard tools: `p-` followed by the output of
//! `printf %s 191212121212 | openssl dgst -sha256 -mac HMAC -macopt hexkey:KEY -r | cut -d' ' -f1
//! | tr 0-9a-f a-p`.
//! The `p-` says what the id is and leaves room for another scheme under another prefix.
//!
//! The key is at least 32 random bytes, written as hex digits in a file of its own. This
//! module owns the key's and the pseudonym's form; it never reads a file or the clock (the
//! caller passes the key's text and the reference date), and no error or `Debug` output shows
//! the key or a number's digits.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub use crate::protocol::{PersonalIdentityNumber, PersonalIdentityNumberError};

/// What every pseudonym starts with.
pub const PREFIX: &str = "p-";
/// Fewest key bytes accepted (the length of the MAC; shorter keys weaken it).
pub const MIN_KEY_BYTES: usize = 32;
/// Most key bytes accepted: more adds nothing, and a file that long is not a key.
pub const MAX_KEY_BYTES: usize = 1024;
/// Bytes in a new key (`rrct pseudonymise new-key` draws them from the operating system).
pub const NEW_KEY_BYTES: usize = 32;
const KEY_ID_LEN: usize = 8;

/// The key pseudonyms are made with. Its `Debug` shows the key's public id only.
#[derive(Clone)]
pub struct PseudonymKey {
    bytes: Vec<u8>,
    mac: Hmac<Sha256>,
    id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey({})", self.id_hex())
    }
}

/// Why a text is not a pseudonym key. No variant holds any of the key's characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymKeyError {
    #[error("the pseudonym key is not hexadecimal (an even number of the digits 0-9, a-f)")]
    NotHex,
    #[error(
        "the pseudonym key has {bytes} bytes; it must have at least {MIN_KEY_BYTES} \
         ({} hex digits)",
        2 * MIN_KEY_BYTES
    )]
    TooShort { bytes: usize },
    #[error("the pseudonym key has {bytes} bytes; it may have at most {MAX_KEY_BYTES}")]
    TooLong { bytes: usize },
}

impl PseudonymKey {
    /// A key from its bytes (at least [`MIN_KEY_BYTES`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<PseudonymKey, PseudonymKeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(PseudonymKeyError::TooShort { bytes: bytes.len() });
        }
        if bytes.len() > MAX_KEY_BYTES {
            return Err(PseudonymKeyError::TooLong { bytes: bytes.len() });
        }
        // HMAC takes a key of any length, so this cannot fail; the error is mapped all the same.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes)
            .map_err(|_| PseudonymKeyError::TooLong { bytes: bytes.len() })?;
        let digest = Sha256::new()
            .chain_update(b"rrct/pseudonym-key-id/v1\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(PseudonymKey {
            bytes: bytes.to_vec(),
            mac,
            id,
        })
    }

    /// A key from hex digits, as a key file holds them (surrounding whitespace ignored).
    ///
    /// ```
    /// use rrct::pseudonym::PseudonymKey;
    /// let key = PseudonymKey::from_hex(&"ab".repeat(32)).unwrap();
    /// assert_eq!(PseudonymKey::from_hex(&key.to_hex()).unwrap().id_hex(), key.id_hex());
    /// assert!(PseudonymKey::from_hex(&"ab".repeat(31)).is_err());
    /// assert!(!format!("{key:?}").contains("abab"));
    /// ```
    pub fn from_hex(text: &str) -> Result<PseudonymKey, PseudonymKeyError> {
        // The hex crate's own error names the offending character: a character of the key.
        let bytes = hex::decode(text.trim()).map_err(|_| PseudonymKeyError::NotHex)?;
        PseudonymKey::from_bytes(&bytes)
    }

    /// The key as hex digits, for writing a new key file; nothing else should print it.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// The key's public id (16 hex digits of a hash of it), so that register hosts can check
    /// that they hold the same key without showing it.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        self.mac
            .clone()
            .chain_update(message)
            .finalize()
            .into_bytes()
            .into()
    }
}

/// The pseudonym of a personal identity number under `key`: `p-` and 64 letters `a`–`p`.
///
/// ```
/// use chrono::NaiveDate;
/// use rrct::pseudonym::{pseudonym, PersonalIdentityNumber, PseudonymKey};
/// let key = PseudonymKey::from_hex(&"00".repeat(32)).unwrap();
/// let on = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
/// let a = pseudonym(&key, &PersonalIdentityNumber::parse("811218-9876", on).unwrap());
/// let b = pseudonym(&key, &PersonalIdentityNumber::parse("198112189876", on).unwrap());
/// assert_eq!(a, b);
/// assert!(a.starts_with("p-") && a.len() == 66);
/// assert!(rrct::identity::canonical_id(&a).is_ok());
/// ```
pub fn pseudonym(key: &PseudonymKey, number: &PersonalIdentityNumber) -> String {
    let mut text = String::with_capacity(PREFIX.len() + 64);
    text.push_str(PREFIX);
    for byte in key.mac(number.as_str().as_bytes()) {
        text.push(char::from(b'a' + (byte >> 4)));
        text.push(char::from(b'a' + (byte & 0x0f)));
    }
    text
}

/// Parse a personal identity number as written (a ten-digit one's century resolved against
/// `reference`, see [`PersonalIdentityNumber::parse`]) and give its pseudonym under `key`.
pub fn pseudonymise(
    key: &PseudonymKey,
    written: &str,
    reference: chrono::NaiveDate,
) -> Result<String, PersonalIdentityNumberError> {
    PersonalIdentityNumber::parse(written, reference).map(|number| pseudonym(key, &number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{canonical_id, contains_personal_identity_number, MAX_ID_LEN};
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn on() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
    }

    /// The bytes 0x00, 0x01, ..., 0x1f.
    fn counting_key() -> PseudonymKey {
        PseudonymKey::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_mac_is_hmac_sha_256() {
        // RFC 4231, test case 6: a 131-byte key, longer than SHA-256's block.
        let key = PseudonymKey::from_bytes(&[0xaa; 131]).unwrap();
        assert_eq!(
            hex::encode(key.mac(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn known_answers() {
        // Made independently with Python's standard library:
        //   import hmac, hashlib
        //   key = bytes(range(32))
        //   tr = str.maketrans('0123456789abcdef', 'abcdefghijklmnop')
        //   "p-" + hmac.new(key, b"191212121212", hashlib.sha256).hexdigest().translate(tr)
        // (and likewise for b"198112189876"; the key id is
        //   hashlib.sha256(b"rrct/pseudonym-key-id/v1\0" + key).hexdigest()[:16]).
        let key = counting_key();
        assert_eq!(
            key.to_hex(),
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        assert_eq!(key.id_hex(), "f0d6cc755ce6d9f8");
        // 121212+1212 is the test number born 1912-12-12 (100 or older on 2024-06-01).
        assert_eq!(
            pseudonymise(&key, "121212+1212", on()).unwrap(),
            "p-gdfckpbejoicgpcnihdnppgjbhapkplaepaalbgochpeodbjipbibkipmohjefin"
        );
        assert_eq!(
            pseudonymise(&key, "811218-9876", on()).unwrap(),
            "p-nmbembccaafoekniadnjilfkcbpjcokfbmdlomlmjikjpgcickflkmnejjdkdklh"
        );
    }

    #[test]
    fn every_spelling_of_one_number_gives_one_pseudonym() {
        let key = counting_key();
        let spellings = [
            "19121212-1212",
            "191212121212",
            "121212+1212",
            " 121212+1212 ",
        ];
        let pseudonyms: Vec<String> = spellings
            .iter()
            .map(|s| pseudonymise(&key, s, on()).unwrap())
            .collect();
        assert!(
            pseudonyms.iter().all(|p| p == &pseudonyms[0]),
            "{pseudonyms:?}"
        );
        // 121212-1212 is someone else: born 2012-12-12.
        assert_ne!(
            pseudonymise(&key, "121212-1212", on()).unwrap(),
            pseudonyms[0]
        );
    }

    #[test]
    fn another_key_gives_another_pseudonym() {
        let other = PseudonymKey::from_bytes(&(1u8..33).collect::<Vec<_>>()).unwrap();
        for number in ["19121212-1212", "811218-9876"] {
            assert_ne!(
                pseudonymise(&counting_key(), number, on()).unwrap(),
                pseudonymise(&other, number, on()).unwrap()
            );
        }
        assert_ne!(counting_key().id_hex(), other.id_hex());
    }

    #[test]
    fn a_bad_number_gets_its_reason() {
        let key = counting_key();
        assert_eq!(
            pseudonymise(&key, "19121212-1213", on()),
            Err(PersonalIdentityNumberError::CheckDigit)
        );
        assert_eq!(
            pseudonymise(&key, "P0012345", on()),
            Err(PersonalIdentityNumberError::Character { position: 1 })
        );
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        let secret = "zz".repeat(32);
        let e = PseudonymKey::from_hex(&secret).unwrap_err();
        assert_eq!(e, PseudonymKeyError::NotHex);
        assert!(!e.to_string().contains('z'));
        assert_eq!(
            PseudonymKey::from_hex(&"ab".repeat(31)).unwrap_err(),
            PseudonymKeyError::TooShort { bytes: 31 }
        );
        assert_eq!(
            PseudonymKey::from_hex("abc").unwrap_err(),
            PseudonymKeyError::NotHex
        );
        assert_eq!(
            PseudonymKey::from_bytes(&[1; MAX_KEY_BYTES + 1]).unwrap_err(),
            PseudonymKeyError::TooLong {
                bytes: MAX_KEY_BYTES + 1
            }
        );
        // A key file's trailing newline is no part of the key; 64 bytes are as good as 32.
        let long = "cd".repeat(64);
        let key = PseudonymKey::from_hex(&format!("{long}\n")).unwrap();
        assert_eq!(key.to_hex(), long);
        assert!(!format!("{key:?}").contains("cdcd"));
    }

    proptest! {
        /// Whatever the key and the number, a pseudonym is a valid id that holds no digit and
        /// so can never be taken for a personal identity number; and the ten-digit spelling of
        /// a number (`-` under 100 on the reference date, `+` from 100) gives the pseudonym of
        /// the twelve-digit one.
        #[test]
        fn a_pseudonym_is_always_a_valid_id_and_never_a_number(
            key in prop::collection::vec(any::<u8>(), MIN_KEY_BYTES..=80),
            days in 0u64..(120 * 366),
            birth_number in 0u32..1000,
            coordination in any::<bool>(),
        ) {
            use chrono::Datelike;
            let key = PseudonymKey::from_bytes(&key).unwrap();
            let born = on() - chrono::Days::new(days);
            let day = born.day() + if coordination { 60 } else { 0 };
            let nine = format!(
                "{:02}{:02}{day:02}{birth_number:03}",
                born.year() % 100,
                born.month()
            );
            let ten = (0..10)
                .map(|c| format!("{nine}{c}"))
                .find(|ten| crate::protocol::looks_like_personal_identity_number(ten))
                .unwrap();
            let twelve = format!("{:02}{}-{}", born.year() / 100, &ten[..6], &ten[6..]);
            let separator = if on().years_since(born).unwrap() >= 100 { '+' } else { '-' };
            let short = format!("{}{separator}{}", &ten[..6], &ten[6..]);

            let p = pseudonymise(&key, &twelve, on()).unwrap();
            prop_assert_eq!(&pseudonymise(&key, &short, on()).unwrap(), &p);
            prop_assert_eq!(canonical_id(&p), Ok(p.clone()));
            prop_assert!(p.chars().count() <= MAX_ID_LEN);
            prop_assert!(!p.chars().any(|c| c.is_ascii_digit()));
            prop_assert!(!contains_personal_identity_number(&p));
            prop_assert!(p.starts_with(PREFIX));
        }
    }
}
