//! The trust boundary, tried as an attacker and as a clumsy register integrator would: every
//! bad input of `tests/data/trust/bad_input.json` (also run against any `rrct` binary by
//! `scripts/probe_bad_input.py`) gets its specific 4xx naming the field, and nothing is written
//! (the row count of every table is the same before and after); then what a table of requests
//! cannot show: tokens, versions, seeds at rest, health, outages, timeouts, and one patient
//! under many spellings at once.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::support::{row_counts, taste_variant, TestApp, TestDb, TASTE};

crate::on_both_backends!(every_bad_input_gets_its_4xx_and_writes_nothing);

const CASES: &str = include_str!("../data/trust/bad_input.json");

/// Dates and tokens written into a case as `{today+2}` or `{token:sponsor@taste}`.
struct Placeholders<'a> {
    app: &'a TestApp,
    tokens: HashMap<String, String>,
}

impl Placeholders<'_> {
    async fn token(&mut self, spec: &str) -> Option<String> {
        match spec {
            "none" => return None,
            "guess" => return Some(format!("rrct_{}", "0".repeat(64))),
            _ => {}
        }
        if let Some(t) = self.tokens.get(spec) {
            return Some(t.clone());
        }
        let (role, scope) = spec.split_once('@').unwrap_or((spec, ""));
        let (trial, site) = scope.split_once('/').unwrap_or((scope, ""));
        let token = match role {
            // `source@ID`: a feed bound to source ID (by default TASTE's population register).
            "source" => {
                self.app
                    .source_token(
                        Some(scope)
                            .filter(|s| !s.is_empty())
                            .unwrap_or("population_register"),
                    )
                    .await
            }
            _ => {
                self.app
                    .token(
                        role,
                        Some(trial).filter(|t| !t.is_empty()),
                        Some(site).filter(|s| !s.is_empty()),
                    )
                    .await
            }
        };
        self.tokens.insert(spec.to_string(), token.clone());
        Some(token)
    }

    async fn fill(&mut self, text: &str) -> String {
        let today = chrono::Utc::now().date_naive();
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 1..start + len];
            let value = if let Some(spec) = name.strip_prefix("token:") {
                self.token(spec).await
            } else if let Some(offset) = name.strip_prefix("today") {
                let days: i64 = if offset.is_empty() {
                    0
                } else {
                    offset.parse().expect("a day offset")
                };
                Some((today + chrono::Duration::days(days)).to_string())
            } else {
                None
            };
            match value {
                Some(v) => {
                    out.push_str(&rest[..start]);
                    out.push_str(&v);
                }
                None => out.push_str(&rest[..start + len + 1]),
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    async fn fill_json(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.fill(s).await),
            Value::Array(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(Box::pin(self.fill_json(i)).await);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, i) in map {
                    out.insert(k.clone(), Box::pin(self.fill_json(i)).await);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// Send one request of a case: status and JSON body (null when not JSON).
    async fn send(&mut self, client: &reqwest::Client, r: &Value) -> (u16, Value) {
        let path = self.fill(r["path"].as_str().unwrap()).await;
        let url = format!("{}{path}", self.app.base);
        let mut req = match r["method"].as_str().unwrap() {
            "GET" => client.get(&url),
            _ => client.post(&url),
        };
        if let Some(token) = self.token(r["token"].as_str().unwrap()).await {
            req = req.bearer_auth(token);
        }
        if let Some(headers) = r["headers"].as_object() {
            for (k, v) in headers {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        if let Some(body) = r.get("body") {
            let body = self.fill_json(body).await;
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        } else if let Some(raw) = r["raw"].as_str() {
            req = req
                .header("content-type", "application/json")
                .body(self.fill(raw).await);
        } else if let Some(form) = r["form"].as_str() {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(self.fill(form).await);
        }
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The fields an error body names (`fields[].field` or `rows[].field`).
fn named_fields(body: &Value) -> Vec<String> {
    ["fields", "rows"]
        .iter()
        .flat_map(|k| body["error"][k].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["field"].as_str().map(str::to_string))
        .collect()
}

async fn every_bad_input_gets_its_4xx_and_writes_nothing(db: TestDb) {
    let other = taste_variant("taste2", &[]);
    let app = TestApp::spawn(&db, &[TASTE, &other], "trust").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut fill = Placeholders {
        app: &app,
        tokens: HashMap::new(),
    };
    let cases: Value = serde_json::from_str(CASES).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    let mut wrong = Vec::new();
    let mut by_item: BTreeMap<u64, usize> = BTreeMap::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        *by_item.entry(case["item"].as_u64().unwrap()).or_default() += 1;
        for step in case["steps"].as_array().into_iter().flatten() {
            for _ in 0..step["repeat"].as_u64().unwrap_or(1) {
                let (status, body) = fill.send(&client, step).await;
                assert_eq!(
                    status,
                    step["expect"].as_u64().unwrap() as u16,
                    "{name}: setup {body}"
                );
            }
        }
        // Tokens a request needs are made before counting rows.
        let request = &case["request"];
        fill.token(request["token"].as_str().unwrap()).await;
        if let Some(form) = request["form"].as_str() {
            fill.fill(form).await;
        }
        let before = row_counts(&app.store).await;
        let (status, body) = fill.send(&client, request).await;
        let after = row_counts(&app.store).await;
        let expect = &case["expect"];
        let mut problems = Vec::new();
        if status != expect["status"].as_u64().unwrap() as u16 {
            problems.push(format!("status {status}, expected {}", expect["status"]));
        }
        if let Some(code) = expect["code"].as_str() {
            if body["error"]["code"] != code {
                problems.push(format!("code {}, expected {code}", body["error"]["code"]));
            }
            if body["error"]["message"]
                .as_str()
                .is_none_or(|m| m.is_empty())
            {
                problems.push("no message".into());
            }
        }
        if let Some(field) = expect["field"].as_str() {
            if !named_fields(&body).iter().any(|f| f == field) {
                problems.push(format!("the field `{field}` is not named"));
            }
        }
        if expect["no_record_id"] == json!(true) && body["error"].get("record_id").is_some() {
            problems.push("another site's record id was revealed".into());
        }
        if body.to_string().contains("T2-R7") && name.contains("must not learn") {
            problems.push("another site's record id appears in the body".into());
        }
        if before != after {
            problems.push(format!("written: {before:?} -> {after:?}"));
        }
        if !problems.is_empty() {
            wrong.push(format!("{name}: {} ({body})", problems.join("; ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert!(
        by_item.len() >= 4 && cases.len() >= 40,
        "the table covers the items: {by_item:?}"
    );
    // The patient enrolled in NFC and NFD spellings is one subject, with one allocation.
    let one = rrct::store::allocations::list(&app.store, "taste")
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.subject.starts_with("\u{c5}sa-T1"))
        .count();
    assert_eq!(one, 1);
    app.stop().await;
}
