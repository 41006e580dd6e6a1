//! NATS JetStream against the real server (127.0.0.1:4222, or `RRCT_TEST_NATS_URL`), each test
//! on its own subject prefix and streams: enrolments by request-reply, dead letters, follow-up
//! events, the outbox published; and 2,000 enrolment messages from 32 publishers, every tenth
//! twice, consumed by two `rrct serve` instances, one killed with SIGKILL mid-stream and started
//! again: every record randomised once, every reply the stored allocation, every outbox event
//! published, the audit chain intact.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::support::{patient, protocol_dir, rrct, Kind, ServerProcess, TestApp, TestDb, TASTE};

const NATS_ENV: &str = "RRCT_TEST_NATS_URL";

/// Replies by record id: `(Rrct-Status, body)` of each reply received.
type Replies = HashMap<String, Vec<(String, Value)>>;

/// The NATS URL of the suite, or `None` (with the reason printed) when none is reachable and
/// CI is not set; under CI an unreachable server fails the test.
async fn nats() -> Option<(String, async_nats::Client)> {
    let url = std::env::var(NATS_ENV).unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    match async_nats::connect(&url).await {
        Ok(c) => Some((url, c)),
        Err(e) if std::env::var("CI").is_err() => {
            eprintln!("skipped: no NATS server at {url} ({e}); start nats-server -js");
            None
        }
        Err(e) => panic!("CI is set but NATS at {url} is unreachable: {e}"),
    }
}

/// A prefix of this test's own: `t` + time + process id.
fn prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t{tag}{}{nanos}", std::process::id())
}

fn stream_name(prefix: &str, kind: &str) -> String {
    format!("{}_{kind}", prefix.to_ascii_uppercase())
}

async fn drop_streams(js: &jetstream::Context, prefix: &str) {
    for kind in ["IN", "OUT", "DEAD"] {
        let _ = js.delete_stream(stream_name(prefix, kind)).await;
    }
}

fn enrolment(id: &str, n: usize) -> Value {
    let mut data = patient(n, ["UPP", "LKP", "SUS", "SAH"][n % 4], ["F", "M"][n % 2]);
    data["trial_id"] = json!("taste");
    json!({
        "specversion": "1.0", "id": id, "source": "/registers/swedeheart",
        "type": "rrct.enrolment.requested", "data": data,
    })
}

/// Publish to the stream with the reply subject in `Rrct-Reply-To`; waits for the stream's ack.
async fn publish(js: &jetstream::Context, subject: String, reply_to: &str, event: &Value) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Rrct-Reply-To", reply_to);
    js.publish_with_headers(subject, headers, event.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("stream ack");
}

/// Every message of a stream, in order.
async fn read_stream(js: &jetstream::Context, name: &str) -> Vec<(String, Value)> {
    let stream = js.get_stream(name).await.expect("stream");
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("reader");
    let mut out = Vec::new();
    let mut messages = consumer.messages().await.expect("messages");
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await
    {
        let value: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        out.push((m.subject.to_string(), value));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_by_request_reply_dead_letters_and_the_outbox() {
    let Some((url, client)) = nats().await else {
        return;
    };
    let js = jetstream::new(client.clone());
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, &[TASTE], "bus").await;
    let p = prefix("a");
    let mut settings = rrct::bus::BusSettings::new(&url);
    settings.prefix = p.clone();
    settings.ack_wait = Duration::from_secs(10);
    let bus = rrct::bus::start(app.state.clone(), settings)
        .await
        .expect("bus");
    let inbox = format!("_INBOX.{p}");
    let mut replies = client.subscribe(format!("{inbox}.>")).await.unwrap();

    // An enrolment: the reply is the allocation, with its status.
    publish(
        &js,
        format!("{p}.in.enrol.taste"),
        &format!("{inbox}.1"),
        &enrolment("B-1", 1),
    )
    .await;
    let reply = tokio::time::timeout(Duration::from_secs(20), replies.next())
        .await
        .expect("a reply")
        .unwrap();
    let headers = reply.headers.clone().unwrap();
    assert_eq!(headers.get("Rrct-Status").unwrap().as_str(), "201");
    assert_eq!(headers.get("Ce-Id").unwrap().as_str(), "B-1");
    let allocation: Value = serde_json::from_slice(&reply.payload).unwrap();
    let register = app.token("register", Some("taste"), None).await;
    let (_, stored) = app
        .get("/api/v1/trials/taste/enrolments/R000001", &register)
        .await;
    assert_eq!(allocation, stored);

    // Refused messages: a wrong type for the subject, an invalid envelope, and an enrolment for
    // a trial other than the subject's (the subject is the message's scope, as a token's: 403).
    // Each is answered, dead-lettered and acked.
    let mut wrong_type = enrolment("B-2", 2);
    wrong_type["type"] = json!("rrct.screening.reported");
    publish(
        &js,
        format!("{p}.in.enrol.taste"),
        &format!("{inbox}.2"),
        &wrong_type,
    )
    .await;
    let mut no_id = enrolment("B-3", 3);
    no_id.as_object_mut().unwrap().remove("id");
    publish(
        &js,
        format!("{p}.in.enrol.taste"),
        &format!("{inbox}.3"),
        &no_id,
    )
    .await;
    publish(
        &js,
        format!("{p}.in.enrol.other"),
        &format!("{inbox}.4"),
        &enrolment("B-4", 4),
    )
    .await;
    let mut statuses = BTreeMap::new();
    for _ in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(20), replies.next())
            .await
            .expect("a reply")
            .unwrap();
        statuses.insert(
            r.subject.to_string(),
            r.headers
                .unwrap()
                .get("Rrct-Status")
                .unwrap()
                .as_str()
                .to_string(),
        );
    }
    assert_eq!(
        statuses.values().cloned().collect::<Vec<_>>(),
        ["400", "400", "403"],
        "{statuses:?}"
    );

    // A follow-up event from SWEDEHEART's feed subject.
    let event = json!({"specversion": "1.0", "id": "SH-1", "source": "/registers/swedeheart",
        "type": "rrct.event.recorded",
        "data": {"event_id": "SH-1", "subject": "S000001", "type": "mi",
                 "date": chrono::Utc::now().date_naive().to_string()}});
    publish(
        &js,
        format!("{p}.in.events.swedeheart"),
        &format!("{inbox}.5"),
        &event,
    )
    .await;
    let r = tokio::time::timeout(Duration::from_secs(20), replies.next())
        .await
        .expect("a reply")
        .unwrap();
    let report: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(report["stored"], 1, "{report}");

    // Published: the allocation on {p}.out.taste.rrct.allocation.created; dead letters kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rrct::service::outbox::backlog(&app.store).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the outbox was not published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = read_stream(&js, &stream_name(&p, "OUT")).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, format!("{p}.out.taste.rrct.allocation.created"));
    assert_eq!(out[0].1["data"]["record_id"], "R000001");
    // TASTE is open label: the register gets the arm.
    assert_eq!(out[0].1["data"]["arm"], stored["arm"]);
    let dead = read_stream(&js, &stream_name(&p, "DEAD")).await;
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(dead
        .iter()
        .all(|(s, v)| s.starts_with(&format!("{p}.dead.{p}.in."))
            && v["answer"]["error"].is_object()));

    bus.stop().await;
    app.stop().await;
    drop_streams(&js, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_2000_messages_one_killed_every_record_once() {
    let Some((url, client)) = nats().await else {
        return;
    };
    let db = match TestDb::of(Kind::Postgres).await {
        Some(db) => db,
        None => TestDb::sqlite(),
    };
    let js = jetstream::new(client.clone());
    let p = prefix("k");
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let args = [
        "--nats",
        &url,
        "--nats-prefix",
        &p,
        "--nats-ack-wait-secs",
        "3",
    ];
    let start = |db: &TestDb| ServerProcess::start_with(&db.url, &dir, None, &args, false);
    let mut a = start(&db);
    let b = start(&db);

    const N: usize = 2000;
    const PUBLISHERS: usize = 32;
    // Replies by record: every reply received (a record may be answered more than once).
    let replies: Arc<Mutex<Replies>> = Default::default();
    let mut subscriptions = Vec::new();
    for k in 0..PUBLISHERS {
        let mut sub = client.subscribe(format!("_INBOX.{p}.{k}")).await.unwrap();
        let replies = replies.clone();
        subscriptions.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let status = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Rrct-Status"))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
                let record = body["record_id"].as_str().unwrap_or("?").to_string();
                replies
                    .lock()
                    .await
                    .entry(record)
                    .or_default()
                    .push((status, body));
            }
        }));
    }
    let published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = tokio::task::JoinSet::new();
    for k in 0..PUBLISHERS {
        let (js, p, published) = (js.clone(), p.clone(), published.clone());
        publishers.spawn(async move {
            for n in (k..N).step_by(PUBLISHERS) {
                let event = enrolment(&format!("K-{n}"), n);
                let reply = format!("_INBOX.{p}.{k}");
                publish(&js, format!("{p}.in.enrol.taste"), &reply, &event).await;
                if n % 10 == 0 {
                    // Published twice: the same event, the same answer.
                    publish(&js, format!("{p}.in.enrol.taste"), &reply, &event).await;
                }
                published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    // Mid-stream: kill one instance (SIGKILL), then start it again.
    while published.load(std::sync::atomic::Ordering::Relaxed) < N / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a = start(&db);
    while publishers.join_next().await.is_some() {}

    // Every record answered (messages the killed instance held come again after the ack wait).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answered = replies.lock().await.len();
        if answered >= N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {answered} of {N} records answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let allocations = rrct::store::allocations::list(&store, "taste")
        .await
        .unwrap();
    assert_eq!(allocations.len(), N, "every record randomised exactly once");
    let by_record: HashMap<&str, _> = allocations
        .iter()
        .map(|a| (a.record_id.as_str(), a))
        .collect();
    assert_eq!(by_record.len(), N);
    for (record, answers) in replies.lock().await.iter() {
        let stored = by_record
            .get(record.as_str())
            .unwrap_or_else(|| panic!("a reply for {record}, which is not randomised"));
        for (status, body) in answers {
            assert!(
                status == "201" || status == "200",
                "{record}: {status} {body}"
            );
            assert_eq!(
                body["randomisation_number"].as_i64(),
                Some(stored.randomisation_number),
                "{record}"
            );
            assert_eq!(body["arm"].as_str(), Some(stored.arm.as_str()), "{record}");
        }
    }

    // Every outbox event published: none lost, a duplicate only under the same id.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rrct::service::outbox::backlog(&store).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the outbox was not published");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected: BTreeSet<i64> = rrct::store::outbox::all(&store)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(expected.len(), N, "one allocation event per record");
    let out = read_stream(&js, &stream_name(&p, "OUT")).await;
    let mut seen: HashMap<i64, Value> = HashMap::new();
    let mut last = 0;
    for (_, event) in &out {
        let id: i64 = event["id"].as_str().unwrap().parse().unwrap();
        if let Some(first) = seen.insert(id, event.clone()) {
            assert_eq!(&first, event, "a duplicate of {id} with other content");
        } else {
            // In outbox order, whichever instance published it.
            assert!(id > last, "{id} stored after {last}");
            last = id;
        }
    }
    assert_eq!(
        seen.keys().copied().collect::<BTreeSet<_>>(),
        expected,
        "every outbox event published"
    );

    let out = rrct(&["audit", "verify", "--database", &db.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    store.close().await;
    for s in subscriptions {
        s.abort();
    }
    let mut a = a;
    let mut b = b;
    let _ = a.child.kill();
    let _ = b.child.kill();
    let _ = a.child.wait();
    let _ = b.child.wait();
    drop_streams(&js, &p).await;
}

/// A round's event that the stream refuses (here: larger than the stream takes) is not
/// overtaken by the rest of its round: each later event names its predecessor and is refused,
/// nothing after the gap is marked done, and the next round (starting at the refused event)
/// keeps the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_event_the_stream_refuses_is_not_overtaken() {
    let Some((_, client)) = nats().await else {
        return;
    };
    let js = jetstream::new(client);
    let p = prefix("gap");
    js.create_stream(jetstream::stream::Config {
        name: stream_name(&p, "OUT"),
        subjects: vec![format!("{p}.out.>")],
        max_message_size: 2_000,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("stream");
    let event = |id: i64, size: usize| rrct::service::outbox::Outgoing {
        id,
        trial_id: Some("taste".into()),
        event_type: "rrct.allocation.created".into(),
        event: json!({"id": id.to_string(), "padding": "x".repeat(size)}),
    };
    let round = [event(1, 10), event(2, 5_000), event(3, 10), event(4, 10)];
    let done = rrct::bus::publish::send_in_order(&js, &p, &round).await;
    assert_eq!(
        done,
        [1],
        "only the prefix before the refused event is done"
    );
    let ids = |out: Vec<(String, Value)>| -> Vec<String> {
        out.iter()
            .map(|(_, v)| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(read_stream(&js, &stream_name(&p, "OUT")).await), ["1"]);
    // The next round starts at the first event not done, here sent again small enough.
    let again = [event(2, 10), event(3, 10), event(4, 10)];
    assert_eq!(
        rrct::bus::publish::send_in_order(&js, &p, &again).await,
        [2, 3, 4]
    );
    assert_eq!(
        ids(read_stream(&js, &stream_name(&p, "OUT")).await),
        ["1", "2", "3", "4"]
    );
    drop_streams(&js, &p).await;
}

/// On PostgreSQL the publisher marks what the stream acknowledged without the writers' lock:
/// an enrolment batch, which holds that lock, never waits for the marks, nor they for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_marks_published_without_the_writers_lock() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(&db, &[TASTE], "marks").await;
    let token = app.token("register", Some("taste"), None).await;
    for i in 0..3 {
        let (status, _) = app.enrol("taste", &token, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201);
    }
    let waiting = rrct::service::outbox::unpublished(&app.store, &app.state.trials, 100)
        .await
        .unwrap();
    assert!(waiting.len() >= 3, "each enrolment is told of");
    let ids: Vec<i64> = waiting.iter().map(|e| e.id).collect();
    // A writer holds the lock (as an enrolment batch does) while the marks are written.
    let writer = app.store.begin_write().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        rrct::service::outbox::published(&app.store, &ids, "2026-01-01T00:00:00Z"),
    )
    .await
    .expect("the marks do not wait for the writers' lock")
    .unwrap();
    writer.rollback().await.unwrap();
    assert_eq!(rrct::service::outbox::backlog(&app.store).await.unwrap(), 0);
    app.stop().await;
}
