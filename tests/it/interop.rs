//! The ecosystem faces of a live server: the OpenAPI document, `GET /metrics` and the FHIR R4
//! views, over real sockets on both backends.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{patient, TestApp, TestDb, TASTE};

on_both_backends!(
    metrics_move_with_enrolments_and_name_no_arm_or_subject,
    fhir_views_follow_the_arm_and_site_rules,
    refused_requests_write_nothing,
);

/// Every table a request could write to.
const TABLES: &[&str] = &[
    "trials",
    "sites",
    "strata",
    "allocations",
    "screening_log",
    "audit_log",
    "tokens",
    "events",
    "arm_counts",
    "marginal_counts",
    "clusters",
    "allocation_errors",
    "source_deliveries",
    "outbox",
    "inbound_events",
    "webhooks",
    "lifecycle_changes",
    "unblindings",
];

async fn row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(app.store.pool())
            .await
            .unwrap_or_else(|e| panic!("count {table}: {e}"));
        counts.push((*table, n));
    }
    counts
}

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String, String) {
    let mut request = app.client.get(format!("{}/metrics", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.expect("scrape");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, r.text().await.unwrap_or_default())
}

/// The value of the sample `name` whose labels include `labels`, 0 when there is none.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

fn parse(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not the Prometheus text format: {e}\n{body}"))
}

async fn metrics_move_with_enrolments_and_name_no_arm_or_subject(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "metrics").await;
    let admin = app.token("admin", None, None).await;
    let register = app.token("register", Some("taste"), None).await;

    // Who may scrape: an admin token of no single trial.
    assert_eq!(scrape(&app, None).await.0, 401);
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    assert_eq!(scrape(&app, Some(&sponsor)).await.0, 403);
    let trial_admin = app.token("admin", Some("taste"), None).await;
    assert_eq!(scrape(&app, Some(&trial_admin)).await.0, 403);

    let (status, content_type, before) = scrape(&app, Some(&admin)).await;
    assert_eq!(status, 200, "{before}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let before = parse(&before);
    let randomised = [("trial", "taste"), ("outcome", "randomised")];
    assert_eq!(sample(&before, "rrct_enrolments_total", &randomised), 0.0);

    let mut subjects = Vec::new();
    for i in 0..6 {
        let body = patient(900 + i, if i % 2 == 0 { "UPP" } else { "LKP" }, "F");
        subjects.push(body["subject"].as_str().unwrap().to_string());
        let (status, answer) = app.enrol("taste", &register, &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    // A replay and a refusal are counted under their own outcomes.
    assert_eq!(
        app.enrol("taste", &register, &patient(900, "UPP", "F"))
            .await
            .0,
        200
    );
    let mut young = patient(999, "UPP", "F");
    young["fields"]["age"] = json!(12);
    let (status, refused) = app.enrol("taste", &register, &young).await;
    assert_eq!(status, 422, "{refused}");
    let (status, report) = app
        .post(
            "/api/v1/events",
            &register,
            &json!({"events": [{
                "event_id": "E-metrics-1", "subject": subjects[0], "type": "mi",
                "date": crate::support::days_ago(1), "source": "swedeheart",
            }]}),
        )
        .await;
    assert_eq!(status, 200, "{report}");

    let (status, _, text) = scrape(&app, Some(&admin)).await;
    assert_eq!(status, 200);
    let after = parse(&text);
    assert_eq!(sample(&after, "rrct_enrolments_total", &randomised), 6.0);
    assert_eq!(
        sample(
            &after,
            "rrct_enrolments_total",
            &[("trial", "taste"), ("outcome", "replayed")]
        ),
        1.0
    );
    let refusal = refused["error"]["code"].as_str().unwrap();
    assert_eq!(
        sample(
            &after,
            "rrct_enrolments_total",
            &[("trial", "taste"), ("outcome", refusal)]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &after,
            "rrct_enrolment_duration_seconds_count",
            &[("trial", "taste")]
        ),
        8.0,
        "{text}"
    );
    assert!(
        sample(&after, "rrct_enrolment_batch_size_count", &[]) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(&after, "rrct_randomised", &[("trial", "taste")]),
        6.0
    );
    assert_eq!(
        sample(
            &after,
            "rrct_events_ingested_total",
            &[("source", "swedeheart")]
        ),
        1.0,
        "{text}"
    );
    assert!(sample(&after, "rrct_database_connections", &[("state", "open")]) >= 1.0);
    assert!(text.contains("rrct_outbox_backlog"), "{text}");
    assert!(text.contains("rrct_webhooks_failing"), "{text}");

    // Nothing per arm or per subject.
    let labels: BTreeSet<&str> = after
        .samples
        .iter()
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .collect();
    for forbidden in ["arm", "subject", "record_id", "stratum", "site"] {
        assert!(
            !labels.contains(forbidden),
            "label `{forbidden}` in {labels:?}"
        );
    }
    for arm in ["aspiration", "pci", "Thrombus aspiration"] {
        assert!(!text.contains(arm), "arm `{arm}` in the scrape:\n{text}");
    }
    for subject in &subjects {
        assert!(
            !text.contains(subject.as_str()),
            "subject {subject} in the scrape"
        );
    }
    app.stop().await;
}

async fn fhir_get(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = app.client.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/fhir+json"),
        "{path}"
    );
    (status, r.json().await.expect("FHIR JSON"))
}

/// Every subject of the study as `token` sees it, following the Bundle's `next` links.
async fn all_subjects(app: &TestApp, token: &str, kept: &mut Vec<Value>) -> (Vec<Value>, usize) {
    let mut found = Vec::new();
    let mut url = "/fhir/ResearchSubject?study=taste&_count=2".to_string();
    let mut pages = 0;
    loop {
        let (status, bundle) = fhir_get(app, &url, Some(token)).await;
        assert_eq!(status, 200, "{bundle}");
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "searchset");
        pages += 1;
        for entry in bundle["entry"].as_array().unwrap() {
            found.push(entry["resource"].clone());
        }
        let total = bundle["total"].as_i64().unwrap();
        kept.push(bundle.clone());
        let next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(next) => {
                assert!(next.starts_with(&app.base), "{next}");
                url = next[app.base.len()..].to_string();
            }
            None => {
                assert_eq!(found.len() as i64, total);
                return (found, pages);
            }
        }
    }
}

fn site_of(subject: &Value) -> &str {
    subject["extension"][0]["valueReference"]["identifier"]["value"]
        .as_str()
        .unwrap()
}

async fn fhir_views_follow_the_arm_and_site_rules(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "fhir").await;
    let register = app.token("register", Some("taste"), None).await;
    for i in 0..5 {
        let site = if i % 2 == 0 { "UPP" } else { "LKP" };
        let (status, answer) = app
            .enrol("taste", &register, &patient(700 + i, site, "M"))
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let statistician = app.token("statistician", Some("taste"), None).await;
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let sponsor_upp = app.token("sponsor", Some("taste"), Some("UPP")).await;
    let register_upp = app.token("register", Some("taste"), Some("UPP")).await;
    let mut resources = Vec::new();

    let (status, capability) = fhir_get(&app, "/fhir/metadata", None).await;
    assert_eq!(status, 200);
    assert_eq!(capability["fhirVersion"], "4.0.1");
    resources.push(capability);

    let (status, study) = fhir_get(&app, "/fhir/ResearchStudy/taste", Some(&statistician)).await;
    assert_eq!(status, 200, "{study}");
    assert_eq!(study["status"], "active");
    assert_eq!(study["arm"].as_array().unwrap().len(), 2, "{study}");
    assert!(study["period"]["start"].is_string(), "{study}");
    resources.push(study);
    let (_, blinded) = fhir_get(&app, "/fhir/ResearchStudy/taste", Some(&sponsor)).await;
    assert!(
        blinded.get("arm").is_none(),
        "a sponsor sees no arms: {blinded}"
    );
    let (_, own) = fhir_get(&app, "/fhir/ResearchStudy/taste", Some(&sponsor_upp)).await;
    let sites: Vec<&str> = own["site"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["identifier"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["UPP"]);
    resources.push(blinded);

    let (every, pages) = all_subjects(&app, &statistician, &mut resources).await;
    assert_eq!((every.len(), pages), (5, 3));
    let numbers: Vec<&str> = every.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        numbers,
        ["taste-1", "taste-2", "taste-3", "taste-4", "taste-5"]
    );
    assert!(
        every.iter().all(|s| s["assignedArm"].is_string()),
        "{every:?}"
    );
    for token in [&sponsor, &sponsor_upp] {
        let (seen, _) = all_subjects(&app, token, &mut resources).await;
        assert!(!seen.is_empty());
        for s in &seen {
            assert!(
                s.get("assignedArm").is_none() && s.get("actualArm").is_none(),
                "{s}"
            );
        }
    }
    for token in [&sponsor_upp, &register_upp] {
        let (seen, _) = all_subjects(&app, token, &mut resources).await;
        let sites: BTreeSet<&str> = seen.iter().map(site_of).collect();
        assert_eq!((seen.len(), sites), (3, BTreeSet::from(["UPP"])));
    }

    let other = every.iter().find(|s| site_of(s) == "LKP").unwrap();
    let path = format!("/fhir/ResearchSubject/{}", other["id"].as_str().unwrap());
    let (status, one) = fhir_get(&app, &path, Some(&statistician)).await;
    assert_eq!((status, &one), (200, other));
    let (status, one) = fhir_get(&app, &path, Some(&sponsor)).await;
    assert_eq!(status, 200);
    assert!(one.get("assignedArm").is_none(), "{one}");
    for (path, token, expected) in [
        (path.as_str(), Some(&sponsor_upp), 404),
        ("/fhir/ResearchStudy/taste", None, 401),
        ("/fhir/ResearchStudy/nosuch", Some(&statistician), 404),
        (
            "/fhir/ResearchSubject?study=taste&_count=0",
            Some(&statistician),
            400,
        ),
        (
            "/fhir/ResearchSubject?study=taste&_count=x",
            Some(&statistician),
            400,
        ),
        ("/fhir/ResearchSubject", Some(&statistician), 400),
        ("/fhir/ResearchSubject/taste-999", Some(&statistician), 404),
        ("/fhir/Patient/1", Some(&statistician), 404),
    ] {
        let (status, outcome) = fhir_get(&app, path, token.map(String::as_str)).await;
        assert_eq!(status, expected, "{path}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{path}");
        resources.push(outcome);
    }
    let source = app.source_token("population_register").await;
    let (status, outcome) = fhir_get(&app, "/fhir/ResearchStudy/taste", Some(&source)).await;
    assert_eq!(status, 403, "{outcome}");
    resources.push(outcome);

    validate_with_fhir_resources(&resources);
    app.stop().await;
}

/// Validate `resources` against the FHIR R4 models of the `fhir.resources` Python package
/// (6.4.0, FHIR 4.0.1) with the interpreter in `RRCT_FHIR_PYTHON` (`.ci/run` sets it); without
/// it the check is skipped with the reason printed, except under CI, where it fails.
fn validate_with_fhir_resources(resources: &[Value]) {
    let Ok(python) = std::env::var("RRCT_FHIR_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but RRCT_FHIR_PYTHON is not: .ci/run installs fhir.resources and sets it"
        );
        eprintln!(
            "skipping the fhir.resources validation: RRCT_FHIR_PYTHON (a Python with \
             fhir.resources 6.4.0) is not set; scripts/contract/run.sh validates them in CI"
        );
        return;
    };
    let script = r#"
import importlib, json, sys
import fhir.resources as fr
assert fr.__fhir_version__ == "4.0.1", fr.__fhir_version__
items = json.load(sys.stdin)
for r in items:
    kind = r["resourceType"]
    model = getattr(importlib.import_module("fhir.resources." + kind.lower()), kind)
    model.parse_obj(r)
print(len(items), "valid")
"#;
    use std::io::Write;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("RRCT_FHIR_PYTHON={python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(resources.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "fhir.resources refused a resource:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn refused_requests_write_nothing(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "refused").await;
    let register = app.token("register", Some("taste"), None).await;
    let (status, _) = app.enrol("taste", &register, &patient(1, "UPP", "F")).await;
    assert_eq!(status, 201);
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let register_upp = app.token("register", Some("taste"), Some("UPP")).await;
    let statistician = app.token("statistician", Some("taste"), None).await;
    let admin = app.token("admin", Some("taste"), None).await;
    let before = row_counts(&app).await;

    let reason = json!({"reason": "a test"});
    let mut young = patient(2, "UPP", "F");
    young["fields"]["age"] = json!("old");
    let event = json!({"events": [{"event_id": "E1", "subject": "S000001", "type": "mi", "date": "2020-01-01"}]});
    let refusals: Vec<(&str, Option<&str>, Value, u16)> = vec![
        (
            "/api/v1/trials/taste/enrolments",
            None,
            json!(patient(3, "UPP", "F")),
            401,
        ),
        (
            "/api/v1/trials/taste/enrolments",
            Some(&sponsor),
            json!(patient(3, "UPP", "F")),
            403,
        ),
        (
            "/api/v1/trials/taste/enrolments",
            Some(&register_upp),
            json!(patient(3, "LKP", "F")),
            403,
        ),
        (
            "/api/v1/trials/taste/enrolments",
            Some(&register),
            young,
            422,
        ),
        (
            "/api/v1/trials/nosuch/enrolments",
            Some(&register),
            json!(patient(3, "UPP", "F")),
            404,
        ),
        (
            "/api/v1/trials/taste/screenings",
            Some(&sponsor),
            json!({}),
            403,
        ),
        ("/api/v1/events", Some(&sponsor), event.clone(), 403),
        (
            "/api/v1/events",
            Some(&register),
            json!({"events": [{"event_id": "E2"}]}),
            422,
        ),
        (
            "/api/v1/trials/taste/pause",
            Some(&register),
            reason.clone(),
            403,
        ),
        (
            "/api/v1/trials/taste/close",
            Some(&statistician),
            reason.clone(),
            403,
        ),
        ("/api/v1/trials/taste/pause", None, reason.clone(), 401),
        (
            "/api/v1/trials/taste/sites/UPP/close",
            Some(&sponsor),
            reason.clone(),
            403,
        ),
        (
            "/api/v1/trials/taste/reveal-seed",
            Some(&register),
            json!({}),
            403,
        ),
        (
            "/api/v1/trials/taste/enrolments/R000001/error",
            Some(&register),
            reason.clone(),
            403,
        ),
        (
            "/api/v1/trials/taste/enrolments/R000001/unblind",
            Some(&sponsor),
            json!({"reason": "r", "person": "p"}),
            403,
        ),
        (
            "/api/v1/tokens/000000000000/revoke",
            Some(&register),
            json!({}),
            403,
        ),
        (
            "/api/v1/trials/taste/resume",
            Some(&register),
            json!({"reason": ""}),
            403,
        ),
        (
            "/api/v1/trials/taste/close",
            Some(&admin),
            json!({"reason": ""}),
            422,
        ),
        (
            "/api/v1/trials/taste/close",
            Some(&admin),
            json!({"why": "x"}),
            422,
        ),
        (
            "/api/v1/trials/taste/sites/XXX/close",
            Some(&admin),
            reason.clone(),
            404,
        ),
        (
            "/api/v1/trials/taste/resume",
            Some(&admin),
            reason.clone(),
            409,
        ),
        (
            "/api/v1/trials/taste/reveal-seed",
            Some(&admin),
            json!({}),
            409,
        ),
        (
            "/api/v1/trials/taste/enrolments/R999/error",
            Some(&admin),
            reason.clone(),
            404,
        ),
    ];
    for (path, token, body, expected) in refusals {
        let mut request = app.client.post(format!("{}{path}", app.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{path}: {answer}");
    }
    // Bodies that are not JSON, or not declared as JSON.
    for (content_type, body, expected) in [
        ("application/json", "{\"record_id\": ", 400),
        ("text/plain", "{}", 415),
        ("application/json", "{\"a\": 1, \"a\": 2}", 400),
    ] {
        let r = app
            .client
            .post(app.enrolments_url("taste"))
            .bearer_auth(&register)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "{content_type} {body}");
    }
    // The screening log keeps refused eligibility checks by design; anything else is unchanged.
    let after = row_counts(&app).await;
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, a)| (b.0, b.1, a.1))
        .collect();
    assert!(changed.is_empty(), "refused requests wrote: {changed:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_api_route() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, &[TASTE], "openapi").await;
    let r = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc, rrct::api::openapi::document_json());
    let paths = doc["paths"].as_object().unwrap();

    // Every `/api/v1` route the code registers is in the document, with the same methods.
    let mut registered = BTreeSet::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + 7..];
            // The call's arguments: up to its closing parenthesis.
            let mut depth = 1;
            let call: String = rest
                .chars()
                .take_while(|c| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth > 0
                })
                .collect();
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            if !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json" {
                continue;
            }
            for method in ["get", "post", "put", "delete", "patch"] {
                if call.contains(&format!("{method}(")) {
                    registered.insert((path.to_string(), method.to_string()));
                }
            }
        }
    }
    assert!(registered.len() >= 18, "{registered:?}");
    for (path, method) in &registered {
        let operation = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the document"))[method];
        assert!(
            operation.is_object(),
            "{method} {path} is not in the document"
        );
        let responses = operation["responses"].as_object().unwrap();
        for status in ["401", "500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        // Each failure's body is the one error body.
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    let codes = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap();
    assert!(codes.contains(&json!("not_eligible")) && codes.contains(&json!("trial_not_found")));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    app.stop().await;
}

/// `rrct serve --metrics-access open` serves the metrics without a token; by default a token is
/// needed. JSON logs (`RRCT_LOG_FORMAT=json`) are one JSON object a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_access_is_configurable_and_logs_can_be_json() {
    use crate::support::{protocol_dir, ServerProcess};

    let db = TestDb::sqlite();
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let client = reqwest::Client::new();

    let open = ServerProcess::start_with(&db.url, &dir, None, &["--metrics-access", "open"], false);
    let r = client
        .get(format!("{}/metrics", open.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let scrape = parse(&text);
    assert_eq!(
        sample(&scrape, "rrct_randomised", &[("trial", "taste")]),
        0.0
    );
    assert!(
        text.contains("rrct_randomised{trial=\"taste\"} 0"),
        "{text}"
    );
    drop(open);

    // JSON logs, from a server started with RRCT_LOG_FORMAT=json (and its info lines).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args([
            "serve",
            "--database",
            &db.url,
            "--bind",
            "127.0.0.1:0",
            "--protocols",
        ])
        .arg(&dir)
        .env("RRCT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,sqlx=warn")
        .env("RRCT_SEED_KEY", crate::support::SEED_KEY_HEX)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rrct serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = format!(
        "http://{}",
        line.trim().strip_prefix("listening on ").unwrap()
    );
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
}
