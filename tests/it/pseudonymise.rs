//! `rrct pseudonymise`: the register host's tool, run as the real binary on temporary files.
//! One key gives one pseudonym for every spelling of a number, another key another; bad rows
//! are all reported by line and nothing is written; the key is never printed or logged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::rrct;

/// The bytes 0x00..=0x1f, the key of the library's known-answer test.
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY_HEX: &str = "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d";
/// HMAC-SHA-256 under KEY_HEX of `191212121212`, hex digits written a-p (Python's `hmac`; see
/// `src/pseudonym.rs`).
const TOLVAN: &str = "p-gdfckpbejoicgpcnihdnppgjbhapkplaepaalbgochpeodbjipbibkipmohjefin";

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The binary with the given log filter (`support::rrct` runs it at `warn`).
fn rrct_logging(args: &[&str], filter: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(args)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .output()
        .expect("run rrct")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The rows of a CSV text, header first.
fn rows(csv_text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_string).collect())
        .collect()
}

const EXTRACT: &str = "pnr,site,note\n\
                       19121212-1212,UPP,\"first, quoted\"\n\
                       191212121212,LUND,second spelling\n\
                       811218-9876,UPP,\n";

#[test]
fn one_key_gives_one_pseudonym_for_every_spelling_and_another_key_another() {
    let files = Files::new();
    let key = files.write("k.hex", &format!("{KEY_HEX}\n"));
    let other = files.write("other.hex", OTHER_KEY_HEX);
    let extract = files.write("extract.csv", EXTRACT);

    let out = rrct(&[
        "pseudonymise",
        "--key-file",
        s(&key),
        "--column",
        "pnr",
        s(&extract),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = rows(&text(&out.stdout));
    assert_eq!(first[0], ["pnr", "site", "note"]);
    assert_eq!(first.len(), 4);
    // Both spellings of the test number 1912-12-12: one pseudonym, the one Python computed.
    assert_eq!(first[1][0], TOLVAN);
    assert_eq!(first[2][0], TOLVAN);
    assert_ne!(first[3][0], TOLVAN);
    // The other columns as they were.
    assert_eq!(first[1][1..], ["UPP", "first, quoted"]);
    assert_eq!(first[2][1..], ["LUND", "second spelling"]);
    assert_eq!(first[3][1..], ["UPP", ""]);
    for row in &first[1..] {
        assert_eq!(rrct::identity::canonical_id(&row[0]).as_ref(), Ok(&row[0]));
    }

    let out = rrct(&[
        "pseudonymise",
        "--key-file",
        s(&other),
        "--column",
        "pnr",
        s(&extract),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = rows(&text(&out.stdout));
    assert_eq!(second[1][0], second[2][0]);
    for (a, b) in first[1..].iter().zip(&second[1..]) {
        assert_ne!(a[0], b[0], "another key gives another pseudonym");
    }

    // --out: the same CSV, in a file readable by its owner only.
    let written = files.path("delivered.csv");
    let out = rrct(&[
        "pseudonymise",
        "--key-file",
        s(&key),
        "--column",
        "pnr",
        "--out",
        s(&written),
        s(&extract),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(rows(&std::fs::read_to_string(&written).unwrap()), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&written).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn every_bad_row_is_reported_by_line_and_nothing_is_written() {
    let files = Files::new();
    let key = files.write("k.hex", KEY_HEX);
    let extract = files.write(
        "bad.csv",
        "site,pnr\n\
         UPP,19121212-1212\n\
         UPP,19121212-1213\n\
         LUND,811218-9876\n\
         LUND,P0012345\n",
    );
    let written = files.path("delivered.csv");
    for out_file in [None, Some(&written)] {
        let mut args = vec!["pseudonymise", "--key-file", s(&key), "--column", "pnr"];
        if let Some(path) = out_file {
            args.extend(["--out", s(path)]);
        }
        args.push(s(&extract));
        let out = rrct(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(out.stdout.is_empty(), "no partial output");
        assert!(!written.exists(), "no --out file");
        let at = |line: usize| format!("{}:{line}: column pnr: ", extract.display());
        assert!(
            stderr.contains(&format!("{}the value has a wrong check digit", at(3))),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{}the value has a character", at(5))),
            "{stderr}"
        );
        assert!(
            !stderr.contains(&at(2)) && !stderr.contains(&at(4)),
            "{stderr}"
        );
        assert!(
            stderr.contains("2 bad row(s) of 4; nothing was written"),
            "{stderr}"
        );
        // The values themselves (they may be real people's numbers) are not echoed.
        assert!(
            !stderr.contains("19121212-1213") && !stderr.contains("0012345"),
            "{stderr}"
        );
    }
}

#[test]
fn a_column_not_in_the_header_is_named_with_the_headers() {
    let files = Files::new();
    let key = files.write("k.hex", KEY_HEX);
    let extract = files.write("extract.csv", EXTRACT);
    let out = rrct(&[
        "pseudonymise",
        "--key-file",
        s(&key),
        "--column",
        "personnummer",
        s(&extract),
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "{}:1: no column `personnummer` in the header; its columns are: `pnr`, `site`, `note`",
            extract.display()
        )),
        "{stderr}"
    );
}

#[test]
fn the_key_never_appears_in_output_or_logs() {
    let files = Files::new();
    let key = files.write("k.hex", KEY_HEX);
    let extract = files.write("extract.csv", EXTRACT);
    let bad = files.write("bad.csv", "pnr\n19121212-1213\n");
    let new_key = files.path("new.hex");
    let delivered = files.path("delivered.csv");
    let runs: Vec<Vec<&str>> = vec![
        vec![
            "pseudonymise",
            "--key-file",
            s(&key),
            "--column",
            "pnr",
            s(&extract),
        ],
        vec![
            "pseudonymise",
            "--key-file",
            s(&key),
            "--column",
            "pnr",
            "--out",
            s(&delivered),
            s(&extract),
        ],
        vec![
            "pseudonymise",
            "--key-file",
            s(&key),
            "--column",
            "pnr",
            s(&bad),
        ],
        vec![
            "pseudonymise",
            "--key-file",
            s(&key),
            "--column",
            "nope",
            s(&extract),
        ],
        // The key file given as the extract, or as the output: refused, not printed or replaced.
        vec![
            "pseudonymise",
            "--key-file",
            s(&key),
            "--column",
            "pnr",
            s(&key),
        ],
        vec![
            "pseudonymise",
            "--key-file",
            s(&key),
            "--column",
            "pnr",
            "--out",
            s(&key),
            s(&extract),
        ],
        vec!["pseudonymise", "new-key", "--out", s(&new_key)],
        vec!["pseudonymise", "new-key", "--out", s(&key)],
    ];
    for filter in ["trace", "debug", "info"] {
        let _ = std::fs::remove_file(&new_key);
        for args in &runs {
            let out = rrct_logging(args, filter);
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr)).to_lowercase();
            let made = std::fs::read_to_string(&new_key).unwrap_or_default();
            for secret in [KEY_HEX, made.trim()] {
                // Not the key, nor any 16 hex digits of it.
                for start in 0..secret.len().saturating_sub(15) {
                    let part = &secret[start..start + 16];
                    assert!(!shown.contains(part), "{args:?} {filter}: {shown}");
                }
            }
        }
        assert_eq!(
            std::fs::read_to_string(&key).unwrap(),
            KEY_HEX,
            "the key file is untouched"
        );
    }
}

#[test]
fn new_key_makes_a_private_file_and_never_overwrites_one() {
    let files = Files::new();
    let path = files.path("pseudonym.key");
    let out = rrct(&["pseudonymise", "new-key", "--out", s(&path)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&path).unwrap();
    let hex = written.trim();
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    let key = rrct::pseudonym::PseudonymKey::from_hex(hex).unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "pseudonym key {} written to {}",
            key.id_hex(),
            path.display()
        )
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = rrct(&["pseudonymise", "new-key", "--out", s(&path)]);
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    // The key made works.
    let extract = files.write("extract.csv", EXTRACT);
    let out = rrct(&[
        "pseudonymise",
        "--key-file",
        s(&path),
        "--column",
        "pnr",
        s(&extract),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
