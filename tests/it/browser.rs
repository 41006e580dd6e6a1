//! End to end in a real headless Chromium, driven over the DevTools protocol: sign in through
//! the form, open the dashboard, no console errors, charts present, the session cookie out of
//! scripts' reach, and screenshots under `target/e2e/` for a person (and CI) to look at.
//!
//! Without a Chromium the test is skipped with a message, unless `CI` is set: then it fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::dashboard::seed;
use crate::support::day;
use crate::support::{TestApp, TestDb, TASTE};

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RRCT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Chromium with remote debugging on a free port; killed on drop.
pub(crate) struct Chromium {
    child: Child,
    pub(crate) ws_url: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub(crate) fn start(binary: &PathBuf) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut ws_url = None;
        for line in stderr.lines() {
            let line = line.expect("chromium output");
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                ws_url = Some(url.trim().to_string());
                break;
            }
        }
        Chromium {
            child,
            ws_url: ws_url.expect("chromium did not report its DevTools address"),
            _profile: profile,
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal DevTools client: one page target, flattened session on the browser socket.
pub(crate) struct Page {
    ws: Socket,
    session: String,
    next_id: u64,
    /// Events seen while waiting for replies.
    pub(crate) events: Vec<Value>,
}

impl Page {
    pub(crate) async fn open(ws_url: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("connect to DevTools");
        let mut page = Page {
            ws,
            session: String::new(),
            next_id: 0,
            events: vec![],
        };
        let target = page
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(domain, json!({})).await;
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        page
    }

    async fn next_message(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(STEP_TIMEOUT, self.ws.next())
                .await
                .expect("DevTools went quiet")
                .expect("DevTools socket closed")
                .expect("DevTools socket error");
            if let Message::Text(text) = msg {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = self.next_message().await;
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method} failed: {m}");
                return m["result"].clone();
            }
            self.events.push(m);
        }
    }

    /// Wait for an event (or take it from those already seen).
    pub(crate) async fn wait_for(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i);
        }
        loop {
            let m = self.next_message().await;
            if m["method"] == method {
                return m;
            }
            self.events.push(m);
        }
    }

    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// `expression`'s value, or `None` while the page is between documents.
    pub(crate) async fn try_eval(&mut self, expression: &str) -> Option<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": "Runtime.evaluate", "sessionId": self.session,
                         "params": {"expression": expression, "returnByValue": true}});
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = self.next_message().await;
            if m["id"] == id {
                if m.get("error").is_some() || m["result"].get("exceptionDetails").is_some() {
                    return None;
                }
                return Some(m["result"]["result"]["value"].clone());
            }
            self.events.push(m);
        }
    }

    /// Wait until `condition` (a script expression) holds on a loaded page; the page's URL
    /// when it does.
    pub(crate) async fn wait_until(&mut self, condition: &str) -> String {
        let deadline = std::time::Instant::now() + STEP_TIMEOUT;
        let probe =
            format!("document.readyState === 'complete' && ({condition}) ? location.href : null");
        loop {
            if let Some(Value::String(url)) = self.try_eval(&probe).await {
                return url;
            }
            let now = self.try_eval("location.href + ' ' + document.title").await;
            let failed: Vec<&Value> = self
                .events
                .iter()
                .filter(|e| e["method"] == "Network.loadingFailed")
                .collect();
            assert!(
                std::time::Instant::now() < deadline,
                "waited in vain for `{condition}`; at {now:?}; failed loads: {failed:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run `action` (which navigates) and wait until the new page has loaded.
    pub(crate) async fn navigating(&mut self, action: &str) {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        self.eval(action).await;
        self.wait_for("Page.loadEventFired").await;
    }

    pub(crate) async fn goto(&mut self, url: &str) {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for("Page.loadEventFired").await;
    }

    /// Console errors, uncaught exceptions and browser log errors seen so far.
    pub(crate) fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| {
                (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
                    || e["method"] == "Runtime.exceptionThrown"
                    || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
            })
            .map(|e| e.to_string())
            .collect()
    }

    /// A full-page PNG.
    pub(crate) async fn screenshot(&mut self, path: &PathBuf) {
        let height = self
            .eval("document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(900);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": height.min(8000), "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }
}

pub(crate) fn artefact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("e2e")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some(binary) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no chromium is installed (apt-get install chromium)"
        );
        eprintln!("skipping the browser test: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, &[TASTE], "browser").await;
    seed(&app).await;
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let statistician = app.token("statistician", Some("taste"), None).await;
    let cutoff = day(60);

    let chromium = Chromium::start(&binary);
    let mut page = Page::open(&chromium.ws_url).await;

    for (token, role, shot, expected) in [
        (
            &sponsor,
            "sponsor",
            "dashboard.png",
            "Recruitment over time",
        ),
        (&statistician, "statistician", "report.png", "Hazard ratio"),
    ] {
        page.goto(&format!("{}/", app.base)).await;
        assert_eq!(page.eval("document.title").await, "Sign in · rrct");
        page.navigating(&format!(
            "document.getElementById('token').value = '{token}'; \
             document.getElementById('sign-in').click();"
        ))
        .await;
        assert_eq!(
            page.eval("location.pathname").await,
            "/trials/taste",
            "{role} lands on the trial"
        );
        page.goto(&format!("{}/trials/taste?cutoff={cutoff}", app.base))
            .await;
        let text = page.eval("document.body.innerText").await;
        let text = text.as_str().unwrap();
        assert!(text.contains(expected), "{role}: {text}");
        let charts = page.eval("document.querySelectorAll('svg').length").await;
        assert!(charts.as_u64().unwrap() >= 2, "{role}: {charts} charts");
        let drawn = page
            .eval("document.querySelector('svg').getBoundingClientRect().width")
            .await;
        assert!(
            drawn.as_f64().unwrap() > 300.0,
            "{role}: chart width {drawn}"
        );
        assert_eq!(page.eval("document.cookie").await, "", "HttpOnly cookie");
        page.screenshot(&artefact(shot)).await;
        page.navigating("document.querySelector('form[action=\"/logout\"] button').click();")
            .await;
        assert_eq!(page.eval("location.pathname").await, "/");
    }
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(chromium);
    app.stop().await;
}
