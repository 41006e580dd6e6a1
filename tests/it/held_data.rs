//! The dashboards' held data: a trial read once, then only the rows written since. Whatever
//! the writes and however they interleave with the reads, the held data must equal the trial
//! read afresh, and the pages built from them the pages of a fresh read.

use std::sync::Arc;

use rrct::analysis::TrialData;
use rrct::endpoints::DataCutoff;
use rrct::service::trial_view::{held, PreparedTrial, TrialViews};
use rrct::store::since::{self, Since};
use rrct::store::Store;
use serde_json::{json, Value};

use crate::support;
use crate::support::{patient, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    rows_written_since_added_to_a_first_read_equal_a_fresh_read,
    held_data_stay_exact_while_writers_and_readers_interleave,
    a_first_read_across_a_write_is_taken_again_in_one_state,
    a_first_read_without_a_second_connection_is_taken_in_one_snapshot,
    a_preparation_after_additions_derives_again_only_the_subjects_they_change,
    a_server_started_again_takes_the_saved_rows_and_reads_those_written_since,
);

/// Register events for `subjects` (dated `days_ago` before today), each with its own id.
async fn deliver(
    app: &TestApp,
    token: &str,
    tag: &str,
    subjects: &[usize],
    kind: &str,
    days_ago: i64,
) {
    let events: Vec<Value> = subjects
        .iter()
        .map(|i| {
            json!({"event_id": format!("{tag}-{i}"), "subject": format!("S{i:06}"), "type": kind,
                   "date": support::days_ago(days_ago), "source": support::source_of(kind)})
        })
        .collect();
    let (status, body) = app
        .post("/api/v1/events", token, &json!({ "events": events }))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A server with `n` subjects enrolled at UPP, and a register token and a feed token.
async fn enrolled(db: &TestDb, name: &str, n: usize) -> (TestApp, String, String) {
    enrolled_days_ago(db, name, n, 0).await
}

/// [`enrolled`], the subjects randomised `days` days before today.
async fn enrolled_days_ago(
    db: &TestDb,
    name: &str,
    n: usize,
    days: u64,
) -> (TestApp, String, String) {
    let app = TestApp::spawn(db, &[TASTE], name).await;
    let today = app.clock.today();
    app.clock.set_today(today - chrono::Days::new(days));
    let register = app.token("register", None, None).await;
    let feed = app.token("admin", None, None).await;
    for i in 0..n {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    app.clock.set_today(today);
    (app, register, feed)
}

/// Enrol patient `i` at UPP, with an infarction `days_ago` before (register history), delivered
/// first; `tokens` are the feed's and the register's.
async fn enrol_with_history(
    app: &TestApp,
    (feed, register): (&str, &str),
    i: usize,
    days_ago: i64,
) {
    deliver(app, feed, "H", &[i], "mi", days_ago).await;
    let (status, body) = app.enrol("taste", register, &patient(i, "UPP", "M")).await;
    assert_eq!(status, 201, "{body}");
}

/// Mark `record` randomised in error, as `rrct` on the command line does.
async fn mark_in_error(app: &TestApp, record: &str, reason: &str) {
    rrct::service::randomised_in_error::mark(
        &app.store,
        "taste",
        record,
        reason,
        &rrct::service::randomised_in_error::Marking {
            actor: "cli",
            at: app.clock.now(),
        },
    )
    .await
    .expect("mark");
}

/// Record `record`'s withdrawal today, to `scope`, as the register does.
async fn withdraw(app: &TestApp, register: &str, record: &str, scope: &str) {
    let (status, body) = app
        .post(
            &format!("/api/v1/trials/taste/enrolments/{record}/withdrawal"),
            register,
            &json!({"withdrawn_on": support::days_ago(0), "scope": scope}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Register TASTE's version 1.1 (a target of 8,000, nothing else changed), as `rrct trial
/// register` does.
async fn amend(app: &TestApp, passphrase: &str) {
    let amended = TASTE
        .replacen("version = \"1.0\"", "version = \"1.1\"", 1)
        .replacen("target_sample_size = 7244", "target_sample_size = 8000", 1);
    rrct::service::trials::register_with_seed(
        &app.store,
        rrct::protocol::parse(&amended, "amended.toml").expect("valid amendment"),
        &amended,
        rrct::randomise::MasterSeed::from_passphrase(passphrase),
        &crate::support::seed_key(),
    )
    .await
    .expect("amendment registered");
}

/// The trial read afresh, table by table.
async fn fresh(store: &Store) -> (TrialData, Vec<rrct::endpoints::flow::Screening>) {
    held::read_each_table(store, "taste")
        .await
        .expect("fresh read")
}

fn assert_same(
    what: &str,
    held: &TrialData,
    screening: &[rrct::endpoints::flow::Screening],
    fresh: &(TrialData, Vec<rrct::endpoints::flow::Screening>),
) {
    let numbers = |d: &TrialData| {
        d.allocations
            .iter()
            .map(|a| a.randomisation_number)
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(held), numbers(&fresh.0), "{what}: allocations");
    assert!(
        held.allocations == fresh.0.allocations,
        "{what}: allocation rows"
    );
    // Ids first: a short message when one is missing, repeated or out of order.
    let ids = |d: &TrialData| {
        d.events
            .iter()
            .map(|e| e.event.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(held),
        ids(&fresh.0),
        "{what}: events (each once, in order)"
    );
    assert!(held.events == fresh.0.events, "{what}: event rows");
    assert_eq!(
        held.deliveries, fresh.0.deliveries,
        "{what}: sources' deliveries"
    );
    assert_eq!(
        held.in_error, fresh.0.in_error,
        "{what}: randomised-in-error marks"
    );
    assert_eq!(screening, fresh.1.as_slice(), "{what}: screening log");
    assert!(
        held.baseline == fresh.0.baseline,
        "{what}: the randomised subjects' enrolment fields"
    );
    assert_eq!(
        held.baseline.len(),
        held.allocations.len(),
        "{what}: every randomised subject's fields"
    );
    assert_eq!(
        (
            held.protocol.version.as_str(),
            held.protocol.target_sample_size
        ),
        (
            fresh.0.protocol.version.as_str(),
            fresh.0.protocol.target_sample_size
        ),
        "{what}: protocol"
    );
}

async fn rows_written_since_added_to_a_first_read_equal_a_fresh_read(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "held").await;
    let register = app.token("register", None, None).await;
    // The registers' feed: events for subjects enrolled and not yet enrolled alike.
    let feed = app.token("admin", None, None).await;
    for i in 0..12 {
        let (status, body) = app
            .enrol("taste", &register, &patient(i, "UPP", ["F", "M"][i % 2]))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    deliver(&app, &feed, "MI", &[0, 3, 5], "mi", 2).await;
    // History of someone not yet in the trial: read with their enrolment, not before.
    deliver(&app, &feed, "OLD", &[50], "mi", 400).await;

    let (mut rows, marks) = since::all(&app.store, "taste").await.expect("first read");
    assert_eq!(rows.allocations.len(), 12);
    assert_eq!(
        rows.events.len(),
        3,
        "the not yet enrolled subject's event is not the trial's"
    );
    let first_screening = std::mem::take(&mut rows.screening);
    let mut screening = first_screening;
    let mut held = held::from_rows(&app.store, "taste", rows)
        .await
        .expect("data");
    // As the held data do: the screening rows taken apart bring the enrolment fields.
    held.baseline.record(&screening);
    assert_same("first read", &held, &screening, &fresh(&app.store).await);

    // Nothing written: nothing read, the marks stay.
    match since::since(&app.store, "taste", &marks)
        .await
        .expect("since")
    {
        Since::Added(rows, again) => {
            assert!(
                rows.allocations.is_empty() && rows.events.is_empty() && rows.screening.is_empty()
            );
            assert_eq!(again, marks);
        }
        Since::Changed => panic!("nothing changed"),
    }

    // Enrolments (one of them the subject with history), a refusal, events for subjects held
    // and new, some dated before events already held, and a token (which adds nothing).
    for i in [50, 13, 14] {
        let (status, body) = app.enrol("taste", &register, &patient(i, "KS", "M")).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut ineligible = patient(90, "UPP", "F");
    ineligible["fields"]["diagnosis"] = json!("UA");
    assert_eq!(app.enrol("taste", &register, &ineligible).await.0, 422);
    deliver(&app, &feed, "EARLY", &[0, 3, 13], "mi", 30).await;
    deliver(&app, &feed, "D", &[5, 14, 50], "death", 1).await;
    app.token("sponsor", Some("taste"), None).await;
    // A register saying "nothing new": a delivery, no event.
    let population = app.source_token("population_register").await;
    let (status, body) = app
        .post("/api/v1/events", &population, &json!({"events": []}))
        .await;
    assert_eq!(status, 200, "{body}");

    let (rows, later) = match since::since(&app.store, "taste", &marks)
        .await
        .expect("since")
    {
        Since::Added(rows, later) => (rows, later),
        Since::Changed => panic!("only rows were added"),
    };
    assert!(later.head > marks.head);
    assert_eq!(
        rows.allocations
            .iter()
            .map(|a| a.record_id.as_str())
            .collect::<Vec<_>>(),
        ["R000050", "R000013", "R000014"]
    );
    let ids = |rows: &since::TrialRows| {
        let mut ids: Vec<String> = rows
            .events
            .iter()
            .map(|e| e.event.event_id.clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&rows),
        ["D-14", "D-5", "D-50", "EARLY-0", "EARLY-13", "EARLY-3", "OLD-50"],
        "new events of subjects held, and every event of the newly enrolled"
    );
    assert_eq!(
        rows.screening.len(),
        4,
        "three randomised, one not eligible"
    );
    assert_eq!(rows.deliveries.len(), 1, "the empty delivery is read");
    held.add(rows.allocations, rows.events);
    held.deliveries.extend(rows.deliveries);
    held.baseline.record(&rows.screening);
    screening.extend(rows.screening);
    assert_same(
        "after adding what was written since",
        &held,
        &screening,
        &fresh(&app.store).await,
    );

    // A randomised-in-error mark: the trial's marks are read again, nothing else.
    mark_in_error(&app, "R000003", "duplicate registration").await;
    let (rows, marked) = match since::since(&app.store, "taste", &later)
        .await
        .expect("since")
    {
        Since::Added(rows, marked) => (rows, marked),
        Since::Changed => panic!("a mark only adds to the marks"),
    };
    assert!(rows.allocations.is_empty() && rows.events.is_empty());
    let marks = rows.in_error.expect("the marks, read again");
    assert!(marks.contains_key("R000003"));
    held.in_error = marks;
    assert_same("after a mark", &held, &screening, &fresh(&app.store).await);

    // An amendment changes no row, only the protocol they are analysed by: the rows since
    // (none here) and the protocol read again equal a fresh read.
    amend(&app, "held").await;
    let rows = match since::since(&app.store, "taste", &marked)
        .await
        .expect("since")
    {
        Since::Added(rows, _) => rows,
        Since::Changed => panic!("an amendment changes no row"),
    };
    assert!(rows.protocol_registered, "the amendment is noticed");
    assert!(rows.allocations.is_empty() && rows.events.is_empty());
    held.protocol = held::stored_protocol(&app.store, "taste")
        .await
        .expect("protocol");
    let fresh_data = fresh(&app.store).await;
    assert_eq!(fresh_data.0.protocol.version, "1.1");
    assert_same("after an amendment", &held, &screening, &fresh_data);
    app.stop().await;
}

async fn held_data_stay_exact_while_writers_and_readers_interleave(db: TestDb) {
    let app = Arc::new(TestApp::spawn(&db, &[TASTE], "held-concurrent").await);
    let register = app.token("register", None, None).await;
    let feed = app.token("admin", None, None).await;
    for i in 0..10 {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    let cache = Arc::new(TrialViews::default());
    let cutoff = DataCutoff(chrono::Utc::now().date_naive() + chrono::Days::new(30));
    cache
        .warm(&app.store, &["taste".to_string()], cutoff)
        .await
        .expect("warm");

    // Two writers: one enrols (each new subject with an event from before), one delivers
    // events for subjects enrolled and not yet enrolled; two readers ask for the trial
    // throughout.
    let enroller = {
        let (app, register, feed) = (app.clone(), register.clone(), feed.clone());
        tokio::spawn(async move {
            for i in 10..40 {
                deliver(&app, &feed, "PRE", &[i], "mi", 90).await;
                let (status, body) = app
                    .enrol("taste", &register, &patient(i, "LKP", ["F", "M"][i % 2]))
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        })
    };
    let deliverer = {
        let (app, feed) = (app.clone(), feed.clone());
        tokio::spawn(async move {
            for round in 0..30usize {
                let subjects: Vec<usize> = (0..4).map(|k| (round * 7 + k * 11) % 45).collect();
                deliver(
                    &app,
                    &feed,
                    &format!("R{round}"),
                    &subjects,
                    ["mi", "death"][round % 2],
                    (round % 5) as i64,
                )
                .await;
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (app, cache) = (app.clone(), cache.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while reads < 25 {
                    crate::support::prepared_by(&cache, &app.store, "taste", cutoff).await;
                    reads += 1;
                }
            })
        })
        .collect();
    enroller.await.expect("enroller");
    deliverer.await.expect("deliverer");
    for r in readers {
        r.await.expect("reader");
    }

    let held = crate::support::prepared_by(&cache, &app.store, "taste", cutoff).await;
    let fresh_data = fresh(&app.store).await;
    assert_eq!(held.data.allocations.len(), 40);
    assert_same(
        "after interleaved writes",
        &held.data,
        &held.screening,
        &fresh_data,
    );
    let afresh = PreparedTrial::prepare(fresh_data.0.into(), fresh_data.1.into(), cutoff);
    assert_eq!(
        serde_json::to_value(&held.analysis).unwrap(),
        serde_json::to_value(&afresh.analysis).unwrap(),
        "the analysis of the held data is the analysis of a fresh read"
    );
    // A randomised-in-error mark: the next request reads the marks again and shows it.
    mark_in_error(&app, "R000004", "not a trial patient").await;
    let held = crate::support::prepared_by(&cache, &app.store, "taste", cutoff).await;
    assert!(held.data.in_error.contains_key("R000004"));
    assert_same(
        "after a mark",
        &held.data,
        &held.screening,
        &fresh(&app.store).await,
    );
    // An amendment, then an enrolment: the held rows grow and the protocol is the amended one.
    amend(&app, "held-concurrent").await;
    let (status, body) = app
        .enrol("taste", &register, &patient(40, "UPP", "M"))
        .await;
    assert_eq!(status, 201, "{body}");
    let held = crate::support::prepared_by(&cache, &app.store, "taste", cutoff).await;
    assert_eq!(held.data.protocol.target_sample_size, 8000);
    assert_eq!(held.data.allocations.len(), 41);
    assert_same(
        "after an amendment",
        &held.data,
        &held.screening,
        &fresh(&app.store).await,
    );
    Arc::try_unwrap(app).ok().expect("sole owner").stop().await;
}

/// A first read takes the events on a connection of their own beside the rest (`since::all`):
/// two snapshots, used together only when they saw the same audit head. Here a delivery and
/// an enrolment commit after the events' snapshot has begun and before the rest's: the read
/// must not join the two states (the events would lack what the marks say was read), but read
/// again and give one state, the one after the writes.
async fn a_first_read_across_a_write_is_taken_again_in_one_state(db: TestDb) {
    let (app, register, feed) = enrolled(&db, "held-first-read", 6).await;
    deliver(&app, &feed, "MI", &[0, 2], "mi", 3).await;
    // History of a subject enrolled between the two snapshots' starts.
    deliver(&app, &feed, "OLD", &[6], "mi", 200).await;
    let between = async {
        deliver(&app, &feed, "BETWEEN", &[1, 3], "death", 1).await;
        let (status, body) = app.enrol("taste", &register, &patient(6, "LKP", "M")).await;
        assert_eq!(status, 201, "{body}");
    };
    let (rows, marks) = since::all_after(&app.store, "taste", between)
        .await
        .expect("first read");
    let fresh_data = fresh(&app.store).await;
    let sorted_ids = |events: &[rrct::endpoints::ReceivedEvent]| {
        let mut ids: Vec<String> = events.iter().map(|e| e.event.event_id.clone()).collect();
        ids.sort_unstable();
        ids
    };
    let (ids, want) = (sorted_ids(&rows.events), sorted_ids(&fresh_data.0.events));
    assert_eq!(
        ids, want,
        "the events of the state after the writes, each once"
    );
    assert!(ids.iter().any(|i| i == "BETWEEN-1") && ids.iter().any(|i| i == "OLD-6"));
    assert_eq!(rows.allocations.len(), 7, "the enrolment between is read");
    assert_eq!(rows.screening.len(), fresh_data.1.len());
    // Nothing was written since that state: the marks are the current ones.
    match since::since(&app.store, "taste", &marks)
        .await
        .expect("read since")
    {
        Since::Added(since_rows, _) => {
            assert!(since_rows.allocations.is_empty() && since_rows.events.is_empty())
        }
        Since::Changed => panic!("only rows were added"),
    }
    app.stop().await;
}

/// With every other connection of the pool taken, a first read must not wait for a second one
/// (readers holding one each would wait for each other): it reads the trial in one snapshot.
async fn a_first_read_without_a_second_connection_is_taken_in_one_snapshot(db: TestDb) {
    let (app, _, feed) = enrolled(&db, "held-one-connection", 4).await;
    deliver(&app, &feed, "MI", &[0, 1, 3], "mi", 3).await;
    // A store of two connections, one of them held elsewhere (with a timeout the test would
    // reach if the read waited for it).
    let narrow = Store::connect_pooled(&db.url, std::time::Duration::from_secs(20), Some(2))
        .await
        .expect("connect");
    let other = narrow.pool().acquire().await.expect("a connection");
    let _busy = narrow.pool().acquire().await.expect("the other connection");
    drop(other);
    let started = std::time::Instant::now();
    let (rows, marks) = since::all(&narrow, "taste").await.expect("first read");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the read waited for a connection: {:?}",
        started.elapsed()
    );
    let fresh_data = fresh(&app.store).await;
    assert_eq!(rows.allocations.len(), 4);
    assert_eq!(rows.events.len(), fresh_data.0.events.len());
    assert_eq!(
        marks.head,
        since::all(&app.store, "taste").await.unwrap().1.head
    );
    narrow.close().await;
    app.stop().await;
}

/// Which of a preparation's rows were taken from the one before it (the same row, shared)
/// rather than derived again: their record ids, over every endpoint.
fn taken_from(before: &PreparedTrial, after: &PreparedTrial) -> Vec<String> {
    // The record ids of `a`'s rows that are rows of `b`, for one endpoint.
    let shared = |b: &[rrct::endpoints::EndpointRow], a: &[rrct::endpoints::EndpointRow]| {
        let earlier: std::collections::HashMap<&str, &rrct::endpoints::EndpointRow> =
            b.iter().map(|r| (&*r.subject.record_id, r)).collect();
        let mut taken: Vec<String> = a
            .iter()
            .filter(|r| {
                earlier
                    .get(&*r.subject.record_id)
                    .is_some_and(|e| Arc::ptr_eq(&e.subject.record_id, &r.subject.record_id))
            })
            .map(|r| r.subject.record_id.to_string())
            .collect();
        taken.sort();
        taken
    };
    let taken = shared(&before.rows[0], &after.rows[0]);
    // Every endpoint takes the same subjects' rows.
    for (b, a) in before.rows.iter().zip(after.rows.iter()).skip(1) {
        assert_eq!(shared(b, a).len(), taken.len());
    }
    taken
}

/// The prepared trial of the held data equals the preparation of a fresh read: the same rows
/// and the same analysis.
async fn assert_prepared_as_fresh(what: &str, held: &PreparedTrial, store: &Store) {
    let (data, screening) = fresh(store).await;
    let afresh = PreparedTrial::prepare(data.into(), screening.into(), held.cutoff);
    assert!(held.rows == afresh.rows, "{what}: the endpoint rows");
    assert_eq!(
        serde_json::to_value(&held.analysis).unwrap(),
        serde_json::to_value(&afresh.analysis).unwrap(),
        "{what}: the analysis"
    );
}

/// After writes that only add rows (events, an enrolment, a randomised-in-error mark, an
/// amendment that leaves the endpoints as they were), the next preparation takes the rows of
/// the subjects they leave unchanged from the preparation before and derives the others again;
/// after a write that changes rows in place (a withdrawal), or at another cut-off, it derives
/// every row. Every time, the rows and the analysis are those of a fresh read.
async fn a_preparation_after_additions_derives_again_only_the_subjects_they_change(db: TestDb) {
    // Randomised 60 days ago, with a myocardial infarction 20 days ago each.
    let (app, register, feed) = enrolled_days_ago(&db, "held-rederive", 12, 60).await;
    deliver(&app, &feed, "MI", &(0..12).collect::<Vec<_>>(), "mi", 20).await;
    let cutoff = DataCutoff(app.clock.today());
    let views = TrialViews::default();
    let first = support::prepared_by(&views, &app.store, "taste", cutoff).await;
    assert_prepared_as_fresh("first", &first, &app.store).await;

    // A death of S000003 (inside the population register's complete period), a new subject
    // with an earlier event, a mark on R000005.
    deliver(&app, &feed, "D", &[3], "death", 10).await;
    enrol_with_history(&app, (&feed, &register), 12, 40).await;
    mark_in_error(&app, "R000005", "not a trial patient").await;
    let second = support::prepared_by(&views, &app.store, "taste", cutoff).await;
    assert_prepared_as_fresh("after additions", &second, &app.store).await;
    let died = |p: &PreparedTrial| {
        p.rows[0]
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    rrct::endpoints::Outcome::TimeToEvent { event: true, .. }
                )
            })
            .map(|r| r.subject.record_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (died(&first), died(&second)),
        (vec![], vec!["R000003".to_string()])
    );
    let unchanged: Vec<String> = (0..12)
        .filter(|&i| i != 3)
        .map(|i| format!("R{i:06}"))
        .collect();
    assert_eq!(taken_from(&first, &second), unchanged);

    // An amendment that leaves the follow-up and the endpoints as they were.
    amend(&app, "held-rederive").await;
    deliver(&app, &feed, "D", &[7], "death", 12).await;
    let third = support::prepared_by(&views, &app.store, "taste", cutoff).await;
    assert_eq!(third.data.protocol.target_sample_size, 8000);
    assert_prepared_as_fresh("after an amendment", &third, &app.store).await;
    let unchanged: Vec<String> = (0..13)
        .filter(|&i| i != 7)
        .map(|i| format!("R{i:06}"))
        .collect();
    assert_eq!(taken_from(&second, &third), unchanged);

    // A withdrawal changes rows in place: the trial is read afresh and every row derived.
    withdraw(&app, &register, "R000008", "no_further_data_collection").await;
    let fourth = support::prepared_by(&views, &app.store, "taste", cutoff).await;
    assert_prepared_as_fresh("after a withdrawal", &fourth, &app.store).await;
    assert_eq!(taken_from(&third, &fourth), Vec::<String>::new());

    // Another cut-off: every row derived.
    let earlier_day = DataCutoff(app.clock.today() - chrono::Days::new(10));
    let other = support::prepared_by(&views, &app.store, "taste", earlier_day).await;
    assert_prepared_as_fresh("at another cut-off", &other, &app.store).await;
    assert_eq!(taken_from(&fourth, &other), Vec::<String>::new());
    app.stop().await;
}

/// On PostgreSQL the rows written since a read are found through the events' sequence index
/// and, per new event, the (trial, subject) index of the allocations, with or without
/// statistics. Without statistics (a new trial's first minutes, or autovacuum off) an open
/// sequence range was estimated at a third of the table and the events read whole, and the
/// trial's allocations hashed, whatever the number of new rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_since_are_read_by_index_with_or_without_statistics() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn_with(&db, &[TASTE], "held-plans", |s| s.database_pool = Some(2)).await;
    let pool = app.store.pool();
    let register = app.token("register", None, None).await;
    let feed = app.token("admin", None, None).await;
    for i in 0..40 {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    // Register history of these subjects and of others, and no statistics.
    for sql in [
        "ALTER TABLE events SET (autovacuum_enabled = false)",
        "ALTER TABLE allocations SET (autovacuum_enabled = false)",
        "INSERT INTO events (event_id, subject, event_type, event_date, source, \
         content_sha256, recorded_at) SELECT 'HIST-' || g, 'S' || lpad((g % 400)::text, 6, '0'), \
         'mi', '2024-01-01', 'swedeheart', 'x', '2024-01-02' FROM generate_series(1, 20000) g",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    let views = TrialViews::default();
    let cutoff = DataCutoff(app.clock.today());
    support::prepared_by(&views, &app.store, "taste", cutoff).await;
    // An event of a subject randomised before, and a new subject with an earlier event: the
    // next read since prepares both statements on the pool's connections.
    deliver(&app, &feed, "NEW", &[3], "mi", 5).await;
    enrol_with_history(&app, (&feed, &register), 40, 30).await;
    let held = support::prepared_by(&views, &app.store, "taste", cutoff).await;
    assert_eq!(held.data.allocations.len(), 41);
    let last: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM events")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut conns = vec![pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    // (what, the statement's text, its parameters, what its plan must use): the events since
    // from the sequence index, each probing the allocations (a subplan), not the trial's
    // allocations each probing the events; the new subjects' events by subject.
    let reads = [
        (
            "events since",
            "%EXISTS (SELECT 1 FROM allocations a%",
            format!("'taste', {}, 40, {last}", last - 2),
            ["events_seq", "SubPlan"],
        ),
        (
            "the new subjects' events",
            "%a.randomisation_number > $2 AND a.randomisation_number <= $3%",
            "'taste', 40, 41".to_string(),
            ["Nested Loop", "events_subject"],
        ),
    ];
    let mut planned = 0;
    for statistics in [false, true] {
        for conn in conns.iter_mut() {
            if statistics {
                sqlx::query("ANALYZE events, allocations")
                    .execute(&mut **conn)
                    .await
                    .unwrap();
            }
            for (what, text, params, uses) in &reads {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM pg_prepared_statements WHERE statement LIKE $1",
                )
                .bind(text)
                .fetch_all(&mut **conn)
                .await
                .unwrap();
                for name in names {
                    let plan: Vec<String> =
                        sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({params})"))
                            .fetch_all(&mut **conn)
                            .await
                            .unwrap();
                    let plan = plan.join("\n");
                    let at = format!("{what}, statistics: {statistics}\n{plan}");
                    // (The 41 allocations fit one page: with statistics, a scan of it is
                    // the planner's right choice.)
                    assert!(
                        !plan.contains("Seq Scan on events"),
                        "events read whole: {at}"
                    );
                    assert!(!plan.contains("Hash"), "a table hashed whole: {at}");
                    for used in uses {
                        assert!(plan.contains(used), "no {used}: {at}");
                    }
                    planned += 1;
                }
            }
        }
    }
    assert!(
        planned >= 4,
        "both reads are prepared on the pool ({planned} plans)"
    );
    drop(conns);
    app.stop().await;
}

/// Wait (at most 10 s) until the trial's rows are saved, as a server does once ready.
async fn until_saved(store: &Store) {
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trial_snapshots")
            .fetch_one(store.pool())
            .await
            .expect("count");
        if n > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The trial's held data, as a server that has held nothing yet reads them now.
async fn started_again(store: &Store) -> held::HeldRead {
    read_at_head(&held::HeldData::default(), store).await
}

/// TASTE's data as `server` holds them at the audit chain's current head.
async fn read_at_head(server: &held::HeldData, store: &Store) -> held::HeldRead {
    let head = rrct::store::audit::head_seq(store).await.expect("head");
    server
        .at_least(store, "taste", head, None)
        .await
        .expect("held data")
}

/// A server started again takes the rows a server saved and reads only those written since:
/// equal to a fresh read after every kind of write that adds rows. A copy of another format,
/// or read at an audit entry whose hash the chain no longer has, is not taken, and a write that
/// changes rows in place since the copy makes the trial read afresh.
async fn a_server_started_again_takes_the_saved_rows_and_reads_those_written_since(db: TestDb) {
    let (app, register, feed) = enrolled(&db, "held-saved", 12).await;
    // The server's own start-up copy (of no rows) first, so that it does not land later.
    until_saved(&app.store).await;
    sqlx::query("DELETE FROM trial_snapshots")
        .execute(app.store.pool())
        .await
        .expect("delete");
    deliver(&app, &feed, "MI", &[0, 3, 5], "mi", 2).await;
    mark_in_error(&app, "R000004", "duplicate registration").await;
    withdraw(&app, &register, "R000006", "no_further_contact").await;

    // Nothing saved: read afresh, then saved (once: a second save has nothing to add).
    let server = held::HeldData::default();
    let read = read_at_head(&server, &app.store).await;
    assert_eq!(read.origin, held::Origin::Read);
    assert_same(
        "read afresh",
        &read.data,
        &read.screening,
        &fresh(&app.store).await,
    );
    let saving = server
        .save_in_background(&app.store, "taste")
        .expect("save");
    assert!(saving.await.expect("task"), "saved");
    let again = server
        .save_in_background(&app.store, "taste")
        .expect("save");
    assert!(!again.await.expect("task"), "nothing new to save");

    // Taken at the head: the same data without a row read again.
    let read = started_again(&app.store).await;
    assert_eq!(read.origin, held::Origin::Saved);
    assert_same(
        "saved at the head",
        &read.data,
        &read.screening,
        &fresh(&app.store).await,
    );
    assert_eq!(
        read.data.participation,
        fresh(&app.store).await.0.participation
    );

    // Enrolments (one with register history), a refusal, events for subjects held and new, an
    // empty delivery, a mark and an amendment: the saved rows and those written since.
    enrol_with_history(&app, (&feed, &register), 50, 300).await;
    for i in [13, 14] {
        let (status, body) = app.enrol("taste", &register, &patient(i, "KS", "M")).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut ineligible = patient(90, "UPP", "F");
    ineligible["fields"]["diagnosis"] = json!("UA");
    assert_eq!(app.enrol("taste", &register, &ineligible).await.0, 422);
    deliver(&app, &feed, "EARLY", &[0, 3, 13], "mi", 30).await;
    deliver(&app, &feed, "D", &[5, 14, 50], "death", 1).await;
    let population = app.source_token("population_register").await;
    let (status, body) = app
        .post("/api/v1/events", &population, &json!({"events": []}))
        .await;
    assert_eq!(status, 200, "{body}");
    mark_in_error(&app, "R000013", "not a trial patient").await;
    amend(&app, "held-saved").await;
    let read = started_again(&app.store).await;
    assert_eq!(read.origin, held::Origin::Saved);
    let fresh_data = fresh(&app.store).await;
    assert_eq!(fresh_data.0.protocol.version, "1.1");
    assert_same(
        "saved rows and rows since",
        &read.data,
        &read.screening,
        &fresh_data,
    );
    assert_eq!(read.data.participation, fresh_data.0.participation);
    assert_eq!(
        read.data.open_arms_by_version,
        fresh_data.0.open_arms_by_version
    );

    // A copy of another format (another version of rrct, another schema), one read at an
    // entry whose hash the chain no longer has (restored, rolled back or rewritten), and a
    // body that cannot be read back: none is taken; the trial is read afresh and saved again.
    for (what, spoil) in [
        (
            "another format",
            "UPDATE trial_snapshots SET format = 'another'",
        ),
        (
            "another chain",
            "UPDATE trial_snapshots SET head_hash = 'f00d'",
        ),
        (
            "a body that cannot be read back",
            "UPDATE trial_snapshots SET body = '{}'",
        ),
    ] {
        sqlx::query(spoil)
            .execute(app.store.pool())
            .await
            .expect("update");
        let server = held::HeldData::default();
        let read = read_at_head(&server, &app.store).await;
        assert_eq!(read.origin, held::Origin::Read, "{what}");
        assert_same(what, &read.data, &read.screening, &fresh_data);
        // Saved again over it, at the head.
        assert!(server
            .save_in_background(&app.store, "taste")
            .expect("save")
            .await
            .expect("task"));
        assert_eq!(started_again(&app.store).await.origin, held::Origin::Saved);
    }

    // A withdrawal since the copy changes rows in place: read afresh.
    withdraw(&app, &register, "R000008", "no_further_data_collection").await;
    let read = started_again(&app.store).await;
    assert_eq!(
        read.origin,
        held::Origin::Read,
        "a write in place since the copy"
    );
    let fresh_data = fresh(&app.store).await;
    assert_same(
        "after a withdrawal",
        &read.data,
        &read.screening,
        &fresh_data,
    );
    assert_eq!(read.data.participation, fresh_data.0.participation);
    app.stop().await;
}
