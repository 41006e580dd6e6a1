//! The dashboards: every page for every role, with what each must show and must never show,
//! sign-in through the form into an HttpOnly cookie, and the closed HTML report.

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

pub use crate::support::day;
use crate::support::{patient, rrct, start, taste_variant, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    pages_show_each_role_its_own_view,
    closed_report_is_self_contained,
    small_counts_never_leak_from_blinded_pages_or_the_summary,
    audit_page_pages_through_more_than_a_hundred_entries,
    a_write_is_seen_by_the_next_request_despite_the_page_cache,
    readyz_answers_503_until_the_served_trials_are_prepared
);

/// Arm ids and labels of the TASTE protocol: never on a blinded page.
const ARM_WORDS: [&str; 4] = [
    "aspiration",
    "pci",
    "PCI alone",
    "Thrombus aspiration followed by PCI",
];

/// A small trial, enrolled on [`start`]: 20 randomised at UPP, 3 at KS (a small count), one not
/// eligible and one declined at UPP, and deaths for ten subjects over the following weeks,
/// received on their days.
pub async fn seed(app: &TestApp) {
    app.clock.set_today(start());
    let register = app.token("register", None, None).await;
    for i in 0..23 {
        let site = if i < 20 { "UPP" } else { "KS" };
        let (status, body) = app
            .enrol("taste", &register, &patient(i, site, ["F", "M"][i % 2]))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut ineligible = patient(100, "UPP", "F");
    ineligible["fields"]["diagnosis"] = json!("UA");
    assert_eq!(app.enrol("taste", &register, &ineligible).await.0, 422);
    let mut declined = patient(101, "UPP", "M");
    declined["reason"] = json!("consent_declined");
    let (status, body) = app
        .post("/api/v1/trials/taste/screenings", &register, &declined)
        .await;
    assert_eq!(status, 201, "{body}");
    let events: Vec<Value> = (0..10)
        .map(|i| {
            json!({"event_id": format!("D{i}"), "subject": format!("S{i:06}"), "type": "death",
                   "date": day(3 + 2 * i as i64), "source": "population_register"})
        })
        .collect();
    app.deliver_on_their_days(&register, &events).await;
}

/// A browser without JavaScript: follows nothing by itself, keeps the session cookie.
struct Reader<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Reader<'a> {
    fn new(app: &'a TestApp) -> Self {
        Reader {
            app,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Post the sign-in form; returns status, `Location` and the `Set-Cookie` header.
    async fn sign_in(&mut self, token: &str) -> (u16, String, String) {
        let r = self
            .client
            .post(format!("{}/login", self.app.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap();
        let header = |name| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (location, set_cookie) = (header(LOCATION), header(SET_COOKIE));
        if let Some(pair) = set_cookie.split(';').next().filter(|p| !p.is_empty()) {
            self.cookie = Some(pair.to_string());
        }
        (r.status().as_u16(), location, set_cookie)
    }

    /// GET a page; returns status, `Location` and body.
    async fn get(&self, path: &str) -> (u16, String, String) {
        let mut req = self.client.get(format!("{}{path}", self.app.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        // askama writes `<` as `&#60;`, plotters as `&lt;`: compare one spelling.
        let status = r.status().as_u16();
        let body = r.text().await.unwrap().replace("&#60;", "&lt;");
        (status, location, body)
    }

    /// Sign in with a token and open the trial's page.
    async fn page_for(app: &'a TestApp, token: &str, query: &str) -> String {
        let mut reader = Reader::new(app);
        let (status, location, _) = reader.sign_in(token).await;
        assert_eq!(status, 303);
        assert!(
            location == "/trials/taste" || location == "/trials",
            "{location}"
        );
        let (status, _, body) = reader.get(&format!("/trials/taste{query}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn assert_no_arms(what: &str, text: &str) {
    for word in ARM_WORDS {
        assert!(!text.contains(word), "{what} shows arm `{word}`:\n{text}");
    }
    assert!(
        !text.contains("by_arm") && !text.contains("Hazard"),
        "{what}"
    );
}

/// The table row of `site` on a page.
fn site_row<'b>(body: &'b str, site: &str) -> &'b str {
    let start = body
        .find(&format!("<tr><td>{site} "))
        .unwrap_or_else(|| panic!("no row for {site}"));
    let end = body[start..].find("</tr>").unwrap() + start;
    &body[start..end]
}

async fn pages_show_each_role_its_own_view(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "dashboard").await;
    seed(&app).await;
    let later = format!("?cutoff={}", day(60));

    // Signed out: every page leads to the sign-in form.
    let anonymous = Reader::new(&app);
    let (status, location, _) = anonymous.get("/trials/taste").await;
    assert_eq!((status, location.as_str()), (303, "/"));
    let (status, _, form) = anonymous.get("/").await;
    assert_eq!(status, 200);
    assert!(form.contains("action=\"/login\"") && form.contains("name=\"token\""));
    let mut wrong = Reader::new(&app);
    let (status, _, set_cookie) = wrong.sign_in("rrct_not-a-token").await;
    assert_eq!((status, set_cookie.as_str()), (401, ""));

    // Sponsor: blinded, small counts suppressed, the session cookie out of scripts' reach.
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let mut reader = Reader::new(&app);
    let (status, location, set_cookie) = reader.sign_in(&sponsor).await;
    assert_eq!((status, location.as_str()), (303, "/trials/taste"));
    assert!(
        set_cookie.starts_with("rrct_session=")
            && set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    let (status, _, body) = reader.get(&format!("/trials/taste{later}")).await;
    assert_eq!(status, 200, "{body}");
    for expected in [
        "Recruitment over time",
        "Target 7244",
        "UPP",
        "KS",
        "Pooled outcome counts",
        "All-cause death within 1 year",
        "consent declined",
        "Participant flow",
        "<svg",
    ] {
        assert!(body.contains(expected), "sponsor page lacks `{expected}`");
    }
    assert_no_arms("sponsor page", &body);
    // KS randomised 3 of 3 eligible: shown as <5, its inclusion rate withheld.
    let ks = site_row(&body, "KS");
    assert!(
        ks.contains("&lt;5") && !ks.contains(">3<") && !ks.contains("100.0%"),
        "{ks}"
    );
    assert!(body.contains("&lt;5 of &lt;5"), "chart labels suppress too");
    // One patient not eligible: the reason is listed, the count is not.
    let stemi = &body[body
        .find("ST-elevation myocardial infarction (stemi)")
        .unwrap()..];
    assert!(stemi[..stemi.find("</tr>").unwrap()].contains("&lt;5"));
    // UPP's 20 would give KS's 3 away (23 - 20): withheld as well, the total stays.
    let upp = site_row(&body, "UPP");
    assert!(upp.contains(">withheld<") && !upp.contains(">20<"), "{upp}");
    assert!(body.contains("<div class=\"v\">23</div><div class=\"k\">Randomised"));
    let headers = reader
        .client
        .get(format!("{}/trials/taste", app.base))
        .header(COOKIE, reader.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(headers.headers()["cache-control"], "no-store");
    assert!(headers.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));

    // The sponsor's API view is blinded as well.
    let (status, summary) = app
        .get(&format!("/api/v1/trials/taste/summary{later}"), &sponsor)
        .await;
    assert_eq!(status, 200);
    assert_no_arms("sponsor summary", &summary.to_string());
    assert_eq!(
        app.get("/api/v1/trials/taste/analysis", &sponsor).await.0,
        403
    );

    // A register host scoped to UPP never sees another site, nor trial-wide outcomes.
    let upp = app.token("register", Some("taste"), Some("UPP")).await;
    let body = Reader::page_for(&app, &upp, &later).await;
    assert!(body.contains("UPP") && body.contains("site UPP"));
    // (As a word: the registers' descriptions hold "RIKS-HIA".)
    let names_ks = body.match_indices("KS").any(|(i, _)| {
        let before = body[..i].chars().next_back();
        let after = body[i + 2..].chars().next();
        !before.is_some_and(|c| c.is_ascii_uppercase())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    assert!(
        !names_ks && !body.contains("Karolinska"),
        "UPP host sees KS"
    );
    assert!(!body.contains("Target 7244"));
    assert!(body.contains("shown to the sponsor only"));
    assert_no_arms("register host page", &body);
    let (_, summary) = app
        .get(&format!("/api/v1/trials/taste/summary{later}"), &upp)
        .await;
    let text = summary.to_string();
    assert!(!text.contains("\"KS\""), "{text}");
    assert_no_arms("register host summary", &text);

    // Admin: the blinded page too.
    let admin = app.token("admin", None, None).await;
    let mut reader = Reader::new(&app);
    let (_, location, _) = reader.sign_in(&admin).await;
    assert_eq!(location, "/trials");
    let (status, location, _) = reader.get("/trials").await;
    assert_eq!((status, location.as_str()), (303, "/trials/taste"));
    let (_, _, body) = reader.get(&format!("/trials/taste{later}")).await;
    assert!(body.contains("Blinded"));
    assert_no_arms("admin page", &body);

    // Statistician and DSMB: the unblinded page with the primary analysis.
    for role in ["statistician", "dsmb"] {
        let token = app.token(role, None, None).await;
        let mut reader = Reader::new(&app);
        reader.sign_in(&token).await;
        let (status, _, body) = reader.get(&format!("/trials/taste{later}")).await;
        assert_eq!(status, 200, "{body}");
        for expected in [
            "Unblinded",
            "Hazard ratio",
            "aspiration vs pci",
            "Log-rank",
            "Number at risk",
            "PCI alone (pci)",
            "Balance and predictability of the allocations per stratum",
            "site=KS;sex=F",
            "All-cause death within 30 days",
            "by arm",
            "Interim monitoring",
            "Planned efficacy boundary",
            "Planned lower boundary",
            "No planned look has been reached yet",
            "Subgroups of the primary endpoint",
            "Hazard ratio by sex",
            "sex = F",
            "interaction",
            "Max imbalance",
            "Correct guesses",
            "for a guesser who sees every allocation",
        ] {
            assert!(body.contains(expected), "{role} page lacks `{expected}`");
        }
        let hr = &body[body.find("class=\"n hr\">").unwrap() + 13..];
        let hr: f64 = hr[..hr.find('<').unwrap()].parse().expect("a hazard ratio");
        assert!(hr > 0.0 && hr.is_finite());
        assert!(
            body.matches("<svg").count() >= 5,
            "KM charts per endpoint, boundaries, forests"
        );
        assert!(
            !body.contains("&lt;5"),
            "no suppression in the closed report"
        );
    }

    // Auditor: the log and the chain status, no dashboard figures.
    let auditor = app.token("auditor", None, None).await;
    let body = Reader::page_for(&app, &auditor, "").await;
    assert!(body.contains("Chain intact"), "{body}");
    assert!(body.contains("Entries 1–"));
    assert!(!body.contains("Recruitment over time") && !body.contains("Hazard"));

    // A bad cut-off is a readable error; signing out drops the cookie.
    let mut reader = Reader::new(&app);
    reader.sign_in(&sponsor).await;
    let (status, _, body) = reader.get("/trials/taste?cutoff=yesterday").await;
    assert_eq!(status, 400);
    assert!(body.contains("not a date"));
    let r = reader
        .client
        .post(format!("{}/logout", app.base))
        .header(COOKIE, reader.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cleared = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("rrct_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    app.stop().await;
}

async fn closed_report_is_self_contained(db: TestDb) {
    // Ten planned events: both looks (7 and 10 deaths) are held by the cut-off.
    let protocol = taste_variant("taste", &[("planned_events = 400", "planned_events = 10")]);
    let app = TestApp::spawn(&db, &[&protocol], "dashboard").await;
    seed(&app).await;
    app.stop().await;
    let out = db.scratch().join("report.html");
    let cutoff = day(60);
    let args = [
        "analyse",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--cutoff",
        &cutoff,
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = rrct(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for expected in [
        "Hazard ratio",
        "Number at risk",
        "<svg",
        "<style>",
        &cutoff,
        // Interim monitoring with both looks held and the observed z drawn.
        "Interim monitoring",
        "Observed z at each look",
        "Boundary at observed information",
        "Planned lower boundary",
        "<td class=\"n\">7</td>",
        // Subgroup forests, allocation quality and balance per stratum.
        "Hazard ratio by site",
        "Hazard ratio by sex",
        "All patients",
        "site=KS;sex=F",
        "Max imbalance",
        "Correct guesses",
    ] {
        assert!(html.contains(expected), "report lacks `{expected}`");
    }
    // The registers, each with its complete-through date.
    assert!(
        html.contains("Register sources"),
        "report lacks the sources"
    );
    // (Counted outside the sources table, whose lags and cadences are small numbers too.)
    let sources_at = html
        .find("<section id=\"sources\">")
        .expect("a sources section");
    let sources_end = sources_at + html[sources_at..].find("</section>").unwrap();
    let balance = format!("{}{}", &html[..sources_at], &html[sources_end..]);
    assert_eq!(
        html.matches("<td class=\"n\">1</td><td class=\"n\">0.66</td>")
            .count(),
        1
    );
    assert_eq!(
        balance
            .matches("<td class=\"n\">2</td><td class=\"n\">1</td>")
            .count(),
        1
    );
    // Nothing to fetch: no scripts, stylesheets, images or links to elsewhere.
    for outside in ["<script", "<link", "src=", "href=\"http", "<form"] {
        assert!(!html.contains(outside), "report contains `{outside}`");
    }
}

/// Walk a JSON value: every integer in 1..=4 outside `suppression` is a leaked small count.
fn small_numbers(v: &Value, path: &str, found: &mut Vec<String>) {
    match v {
        Value::Number(n) if n.as_u64().is_some_and(|n| (1..=4).contains(&n)) => {
            found.push(format!("{path} = {n}"))
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                small_numbers(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                // The registers' lags, cadences and delivery counts are days and deliveries,
                // not patients (their event counts are not released; see the caller); a
                // forecast's `look` is the planned look's ordinal.
                if k != "suppression" && k != "sources" && k != "look" {
                    small_numbers(item, &format!("{path}.{k}"), found);
                }
            }
        }
        _ => {}
    }
}

/// For a total shown and its parts: no hidden part may be worked out by subtraction.
fn assert_not_recoverable(what: &str, total: &Value, parts: &[&Value]) {
    let Some(total) = total.as_u64() else { return };
    let hidden: Vec<&&Value> = parts.iter().filter(|p| !p.is_u64()).collect();
    if hidden.is_empty() {
        return;
    }
    let rest = total - parts.iter().filter_map(|p| p.as_u64()).sum::<u64>();
    assert!(
        hidden.len() >= 2,
        "{what}: the only hidden part is {total} minus the rest = {rest}"
    );
    if hidden.iter().all(|p| ***p == "<5") {
        let n = hidden.len() as u64;
        assert!(
            rest > n && rest < 4 * n,
            "{what}: {n} cells of 1-4 adding up to {rest} are pinned"
        );
    }
}

async fn small_counts_never_leak_from_blinded_pages_or_the_summary(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "dashboard").await;
    seed(&app).await;
    // Eligible but not randomised at UPP: 7 more declined (8 in all) and 2 clinician decisions,
    // reported in the trial's first month.
    app.clock.set_today(start() + chrono::Days::new(30));
    let register = app.token("register", None, None).await;
    for (i, reason) in (200..209)
        .map(|i| (i, "consent_declined"))
        .take(7)
        .chain([(210, "clinician_decision"), (211, "clinician_decision")])
    {
        let mut body = patient(i, "UPP", "F");
        body["reason"] = json!(reason);
        let (status, body) = app
            .post("/api/v1/trials/taste/screenings", &register, &body)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    app.clock.set_today(chrono::Utc::now().date_naive());
    let later = format!("?cutoff={}", day(60));
    let sponsor = app.token("sponsor", Some("taste"), None).await;

    // The summary API releases what the page shows: no raw small count anywhere.
    let (status, summary) = app
        .get(&format!("/api/v1/trials/taste/summary{later}"), &sponsor)
        .await;
    assert_eq!(status, 200, "{summary}");
    let mut found = Vec::new();
    small_numbers(&summary, "summary", &mut found);
    assert!(found.is_empty(), "small counts in the summary: {found:?}");
    // The forecast of the looks reaches blinded readers as dates only: no counts or rates.
    let forecast = &summary["forecast"];
    assert!(
        forecast["looks"].is_array() || forecast["note"].is_string(),
        "{summary}"
    );
    assert!(forecast.get("model").is_none(), "{forecast}");
    let sources = summary["sources"].as_array().expect("the registers");
    assert_eq!(sources.len(), 3);
    assert!(
        sources.iter().all(|s| s.get("events_received").is_none()),
        "a blinded summary counts no register's events: {summary}"
    );
    let flow = &summary["flow"];
    let ks = flow["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "KS")
        .unwrap();
    assert_eq!(ks["randomised"], "<5");
    assert_eq!(ks["inclusion_rate"], "suppressed");
    assert_eq!(flow["randomised"], 23);
    // 10 not randomised = 8 declined + 2 clinician: the 2 is <5, so the 8 goes too.
    assert_eq!(flow["not_randomised"], 10);
    assert_eq!(flow["not_randomised_by_reason"]["clinician_decision"], "<5");
    assert_eq!(
        flow["not_randomised_by_reason"]["consent_declined"],
        "withheld"
    );
    // Every sum a reader sees, checked independently of the rule's own code.
    let sites: Vec<&Value> = flow["sites"].as_array().unwrap().iter().collect();
    for column in [
        "screened",
        "eligible",
        "randomised",
        "not_randomised",
        "not_eligible",
        "lost_to_follow_up",
        "analysed",
    ] {
        let parts: Vec<&Value> = sites.iter().map(|s| &s[column]).collect();
        assert_not_recoverable(column, &flow[column], &parts);
    }
    assert_not_recoverable(
        "screened = not eligible + eligible",
        &flow["screened"],
        &[&flow["not_eligible"], &flow["eligible"]],
    );
    assert_not_recoverable(
        "eligible = not randomised + randomised",
        &flow["eligible"],
        &[&flow["not_randomised"], &flow["randomised"]],
    );
    let reasons: Vec<&Value> = flow["not_randomised_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .collect();
    assert_not_recoverable("reasons", &flow["not_randomised"], &reasons);

    // The page shows the same figures.
    let body = Reader::page_for(&app, &sponsor, &later).await;
    let row = |reason: &str| {
        let start = body.find(&format!("<td>{reason}</td>")).unwrap();
        body[start..start + body[start..].find("</tr>").unwrap()].to_string()
    };
    assert!(row("clinician decision").contains("&lt;5"));
    assert!(row("consent declined").contains("withheld"));
    assert!(!row("consent declined").contains(">8<"));

    // A register host at KS (3 randomised): its totals are its own small counts, in the API,
    // on the page and in the recruitment line.
    let ks_host = app.token("register", Some("taste"), Some("KS")).await;
    let (_, own) = app
        .get(&format!("/api/v1/trials/taste/summary{later}"), &ks_host)
        .await;
    let mut found = Vec::new();
    small_numbers(&own, "KS summary", &mut found);
    assert!(found.is_empty(), "small counts for the KS host: {found:?}");
    assert_eq!(own["flow"]["randomised"], "<5");
    assert_eq!(own["flow"]["sites"][0]["randomised"], "<5");
    assert_eq!(own["site"], "KS");
    let body = Reader::page_for(&app, &ks_host, &later).await;
    assert!(body.contains("Too few patients randomised"), "{body}");
    let recruitment = &body[body.find("id=\"recruitment\"").unwrap()..];
    let recruitment = &recruitment[..recruitment.find("</section>").unwrap()];
    assert!(
        !recruitment.contains("<polyline"),
        "a line of 3 patients is drawn: {recruitment}"
    );
    let ks_row = site_row(&body, "KS");
    assert!(!ks_row.contains(">3<"), "{ks_row}");
    app.stop().await;
}

async fn audit_page_pages_through_more_than_a_hundred_entries(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "dashboard").await;
    let register = app.token("register", None, None).await;
    for i in 0..105 {
        let (status, body) = app
            .enrol("taste", &register, &patient(i, "UPP", ["F", "M"][i % 2]))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let total: i64 = rrct::store::audit::entries(&app.store, Some("taste"))
        .await
        .unwrap()
        .len() as i64;
    assert!(total > 105, "{total} entries");
    let auditor = app.token("auditor", None, None).await;
    let mut reader = Reader::new(&app);
    reader.sign_in(&auditor).await;
    let seqs = |body: &str| -> Vec<i64> {
        body.match_indices("<tr><td class=\"n\">")
            .map(|(i, m)| {
                let rest = &body[i + m.len()..];
                rest[..rest.find('<').unwrap()].parse().unwrap()
            })
            .collect()
    };

    let (status, _, first) = reader.get("/trials/taste").await;
    assert_eq!(status, 200);
    assert!(
        first.contains(&format!("Entries 1–100 of {total}")),
        "{first}"
    );
    assert!(first.contains("href=\"?page=2\"") && !first.contains("Newer"));
    let page1 = seqs(&first);
    assert_eq!(page1.len(), 100);
    assert!(page1.windows(2).all(|w| w[0] > w[1]), "newest first");

    let (_, _, second) = reader.get("/trials/taste?page=2").await;
    assert!(second.contains(&format!("Entries 101–{total} of {total}")));
    assert!(second.contains("href=\"?page=1\"") && !second.contains("Older"));
    let page2 = seqs(&second);
    assert_eq!(page2.len() as i64, total - 100);
    assert!(page2[0] < page1[99], "page 2 continues where page 1 ends");

    // Past the end, and nonsense, are readable pages, not errors.
    let (status, _, beyond) = reader.get("/trials/taste?page=9").await;
    assert_eq!(status, 200);
    assert!(beyond.contains(&format!("Entries 0 of {total}")));
    let (status, _, nonsense) = reader.get("/trials/taste?page=abc").await;
    assert_eq!(status, 200);
    assert!(nonsense.contains("Entries 1–100"));
    app.stop().await;
}

async fn a_write_is_seen_by_the_next_request_despite_the_page_cache(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "dashboard").await;
    seed(&app).await;
    let later = format!("?cutoff={}", day(60));
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let statistician = app.token("statistician", Some("taste"), None).await;
    let mut reader = Reader::new(&app);
    reader.sign_in(&sponsor).await;
    let randomised = |body: &str| -> String {
        let end = body.find("</div><div class=\"k\">Randomised").unwrap();
        let start = body[..end].rfind('>').unwrap() + 1;
        body[start..end].to_string()
    };
    let page = format!("/trials/taste{later}");
    let (_, _, first) = reader.get(&page).await;
    let (_, _, again) = reader.get(&page).await;
    assert_eq!(randomised(&first), "23");
    assert_eq!(first, again, "the same data give the same page");
    // The statistician's page is not the sponsor's, cached or not.
    let unblinded = Reader::page_for(&app, &statistician, &later).await;
    assert!(unblinded.contains("Hazard ratio"));
    let (_, _, sponsor_again) = reader.get(&page).await;
    assert_no_arms("sponsor page after the statistician's", &sponsor_again);

    // Seven more enrolments (in the trial's first month): the next page and summary count them.
    app.clock.set_today(start() + chrono::Days::new(30));
    let register = app.token("register", None, None).await;
    for i in 300..307 {
        let (status, body) = app.enrol("taste", &register, &patient(i, "LKP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    app.clock.set_today(chrono::Utc::now().date_naive());
    let (_, _, after) = reader.get(&page).await;
    assert_eq!(randomised(&after), "30");
    assert!(site_row(&after, "LKP").contains(">7<"));
    let (_, summary) = app
        .get(&format!("/api/v1/trials/taste/summary{later}"), &sponsor)
        .await;
    assert_eq!(summary["flow"]["randomised"], 30);
    app.stop().await;
}

/// `GET /readyz` (no token): `503 unavailable` while the start-up preparation of the served
/// trials is under way, `200` with the served trials once it is done, so that a load balancer
/// sends the first reader to a server that answers from memory. `/healthz` stays `200`
/// meanwhile: the server is healthy, only not ready.
async fn readyz_answers_503_until_the_served_trials_are_prepared(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "readyz").await;
    let register = app.token("register", Some("taste"), None).await;
    for i in 0..12 {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    let readyz = || async {
        let r = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let until_ready = || async {
        for _ in 0..200 {
            let (status, body) = readyz().await;
            if status == 200 {
                return body;
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("/readyz never answered 200");
    };
    // The server's own start-up preparation ends.
    let body = until_ready().await;
    assert_eq!(body, json!({"status": "ready", "trials": ["taste"]}));

    // Another warm-up (as at start-up): not ready from the call on, before its task has run.
    app.state.warm_in_background();
    assert!(matches!(
        app.state.views.readiness(),
        rrct::service::trial_view::Readiness::Preparing(_)
    ));
    until_ready().await;

    // A preparation held open: 503 with the reason, while /healthz says healthy.
    let held = app.state.views.preparing();
    let (status, body) = readyz().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("being read and prepared"), "{message}");
    let health = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(health.status(), 200);
    drop(held);
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}
