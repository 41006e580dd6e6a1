//! Properties of the trust boundary over real HTTP, with generated input: two spellings equal
//! after NFC are one subject, an id with a forbidden character is refused naming its field,
//! and no generated request makes any endpoint answer 5xx.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use unicode_normalization::UnicodeNormalization;

use crate::support::{patient, TestApp, TestDb, TASTE};

crate::on_both_backends!(generated_input_never_breaks_the_trust_boundary);

/// Run `check` on `cases` generated values, each checked against the running app.
fn run<S: Strategy>(cases: u32, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
}

/// Any JSON value, with strings drawn from text that includes control, invisible and
/// combining characters.
fn any_json() -> impl Strategy<Value = Value> {
    let text =
        "(\\PC|[\u{0}-\u{1f}\u{7f}\u{200b}-\u{200f}\u{202a}-\u{202e}\u{feff}\u{301}\u{30a}]){0,24}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|x| json!(x)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("record_id".to_string()),
                    Just("subject".to_string()),
                    Just("site".to_string()),
                    Just("fields".to_string()),
                    Just("events".to_string()),
                    Just("reason".to_string()),
                    Just("age".to_string()),
                    Just("date".to_string()),
                    "[a-z_\u{0}\u{200b}]{0,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

async fn generated_input_never_breaks_the_trust_boundary(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "properties").await;
    let register = app.token("register", Some("taste"), None).await;
    let admin = app.token("admin", None, None).await;
    let source = app.source_token("population_register").await;
    let statistician = app.token("statistician", Some("taste"), None).await;
    let handle = tokio::runtime::Handle::current();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let next = || counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    tokio::task::block_in_place(|| {
        // Two spellings equal after NFC are one subject: the second enrolment, under another
        // record, finds the first.
        let letters = "[a-zA-Z0-9\u{c5}\u{c4}\u{d6}\u{e9}\u{fc}\u{e5}\u{f6}-]{1,8}";
        run(24, letters, |name| {
            let i = next();
            let nfc: String = format!("P{i}-{name}").nfc().collect();
            let nfd: String = nfc.nfd().collect();
            handle.block_on(async {
                let mut first = patient(10_000 + i, "UPP", "F");
                first["subject"] = json!(nfc);
                let (status, body) = app.enrol("taste", &register, &first).await;
                prop_assert_eq!(status, 201, "{}", body);
                let mut second = patient(20_000 + i, "UPP", "F");
                second["subject"] = json!(nfd);
                let (status, body) = app.enrol("taste", &register, &second).await;
                prop_assert_eq!(status, 409, "{}", body);
                prop_assert_eq!(&body["error"]["code"], "already_randomised");
                Ok(())
            })
        });

        // An id with a forbidden character anywhere is refused, naming the field, and nothing
        // is written.
        let forbidden = prop::sample::select(vec![
            '\u{0}',
            '\u{9}',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{a0}',
            '\u{ad}',
            '\u{200b}',
            '\u{200d}',
            '\u{200e}',
            '\u{202e}',
            '\u{2066}',
            '\u{2028}',
            '\u{3000}',
            '\u{feff}',
            '\u{e0041}',
        ]);
        let field = prop::sample::select(vec!["record_id", "subject", "site"]);
        run(
            40,
            ("[A-Z0-9]{0,6}", forbidden, "[A-Z0-9]{0,6}", field),
            |(before, c, after, field)| {
                let i = next();
                handle.block_on(async {
                    let mut body = patient(30_000 + i, "UPP", "F");
                    let value = if field == "site" {
                        format!("{before}{c}UPP{after}")
                    } else {
                        format!("{before}{c}{after}{i}")
                    };
                    body[field] = json!(value);
                    let counts = crate::support::row_counts(&app.store).await;
                    let (status, err) = app.enrol("taste", &register, &body).await;
                    prop_assert_eq!(status, 422, "{:?}: {}", value, err);
                    prop_assert_eq!(&err["error"]["code"], "invalid_enrolment");
                    prop_assert!(
                        err["error"]["fields"]
                            .as_array()
                            .is_some_and(|f| f.iter().any(|f| f["field"] == field)),
                        "{}",
                        err
                    );
                    prop_assert_eq!(crate::support::row_counts(&app.store).await, counts);
                    Ok(())
                })
            },
        );

        // No generated body or path makes any endpoint answer 5xx.
        let endpoint = prop::sample::select(vec![0usize, 1, 2, 3, 4, 5, 6, 7]);
        let segment = "(\\PC|[%./\u{0}\u{200b}]){0,12}";
        run(
            160,
            (endpoint, any_json(), segment),
            |(endpoint, body, segment)| {
                handle.block_on(async {
                    let encoded: String = url_encode(&segment);
                    let (status, answer) = match endpoint {
                        0 => app.enrol("taste", &register, &body).await,
                        1 => app.post("/api/v1/events", &source, &body).await,
                        2 => {
                            app.post("/api/v1/trials/taste/screenings", &register, &body)
                                .await
                        }
                        3 => {
                            app.post(
                                &format!("/api/v1/trials/taste/enrolments/{encoded}/error"),
                                &admin,
                                &body,
                            )
                            .await
                        }
                        4 => {
                            app.get(
                                &format!("/api/v1/trials/taste/enrolments/{encoded}"),
                                &register,
                            )
                            .await
                        }
                        5 => {
                            app.get(
                                &format!("/api/v1/trials/taste/analysis?cutoff={encoded}"),
                                &statistician,
                            )
                            .await
                        }
                        6 => {
                            app.post(
                                &format!("/api/v1/trials/{encoded}/enrolments"),
                                &register,
                                &body,
                            )
                            .await
                        }
                        _ => {
                            app.post(&format!("/api/v1/tokens/{encoded}/revoke"), &admin, &body)
                                .await
                        }
                    };
                    prop_assert!(status < 500, "endpoint {}: {} {}", endpoint, status, answer);
                    if status >= 400 {
                        prop_assert!(answer["error"]["code"].is_string(), "{}", answer);
                    }
                    Ok(())
                })
            },
        );
    });
    app.stop().await;
}

fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}
