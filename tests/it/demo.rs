//! `rrct demo` on a realistic clock: registrations over months, each register delivering on
//! its own cadence and delay. Nothing in the demo's database is dated after its receipt, each
//! site's events reach rrct some days after they happen, and the silent register is stale.

use sqlx::Row;

use crate::support::rrct;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plays_a_running_trial_with_nothing_dated_after_its_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let out = rrct(&[
        "demo",
        "--registrations",
        "600",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("STALE"), "{stdout}");
    let url = format!("sqlite://{}", dir.path().join("rrct.db").display());

    let store = rrct::store::Store::connect(&url).await.unwrap();
    let rows =
        sqlx::query("SELECT event_id, event_date, recorded_at, source, token_id FROM events")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        rows.len() > 20,
        "a year of follow-up: {} events",
        rows.len()
    );
    for r in &rows {
        let (id, date, recorded): (String, String, String) =
            (r.get("event_id"), r.get("event_date"), r.get("recorded_at"));
        assert!(
            date.as_str() < &recorded[..10],
            "event {id} dated {date} is not before its receipt {recorded}"
        );
        // Every event came through a register's own token, under its source.
        assert!(r.get::<Option<String>, _>("source").is_some(), "{id}");
        assert!(r.get::<Option<String>, _>("token_id").is_some(), "{id}");
    }
    // Enrolments are spread over months, not one day.
    let days: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT substr(allocated_at, 1, 10)) FROM allocations")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(days > 100, "randomised on {days} distinct days");
    store.close().await;

    let out = rrct(&["analyse", "--database", &url, "--trial", "taste"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let analysis: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // When the looks will be reached: each planned look's count, reached or expected after
    // the data's complete-through date, with the pooled model it came from.
    let forecast = &analysis["forecast"];
    let through = forecast["complete_through"].as_str().unwrap();
    let looks = forecast["looks"].as_array().unwrap();
    assert_eq!(looks.len(), 2, "{forecast}");
    for l in looks {
        match (l["reached_on"].as_str(), l["expected_on"].as_str()) {
            (Some(on), _) => assert!(on <= through, "{l}"),
            (None, Some(on)) => assert!(on > through, "{l}"),
            // Reached in fewer than half the replicates (a count the horizon may never let
            // the trial reach): no median date.
            (None, None) => assert!(l["probability_reached"].as_f64().unwrap() < 0.5, "{l}"),
        }
    }
    // TASTE lets the hazard change at day 30: two pieces, the first the steeper.
    let model = &forecast["model"];
    assert_eq!(model["model"], "piecewise_exponential", "{forecast}");
    let rates = model["hazard_per_day"].as_array().unwrap();
    assert_eq!(rates.len(), 2, "{forecast}");
    assert!(rates[0].as_f64() > rates[1].as_f64(), "{forecast}");
    assert_eq!(
        forecast["model"]["subjects"], analysis["flow"]["randomised"],
        "{forecast}"
    );
    for site in analysis["flow"]["sites"].as_array().unwrap() {
        if let Some(median) = site["event_lag_days_median"].as_f64() {
            assert!(median > 0.0, "{site}");
        }
    }
    assert!(analysis["flow"]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["event_lag_days_median"].is_number()));
    let stale: Vec<(&str, bool)> = analysis["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["stale"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        stale,
        [
            ("swedeheart", false),
            ("population_register", false),
            ("patient_register", true)
        ]
    );
}
