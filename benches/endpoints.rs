//! Deriving one endpoint for 100,000 subjects from 1,000,000 events (target: under 1 s).
//! `cargo bench --bench endpoints`

use std::time::Instant;

use chrono::NaiveDate;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rrct::endpoints::{derive, DataCutoff, Event, ReceivedEvent, Subject};

const TASTE: &str = include_str!("../protocols/taste.toml");

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (n_subjects, n_events) = if quick {
        (1_000, 10_000)
    } else {
        (100_000, 1_000_000)
    };
    let protocol =
        rrct::protocol::parse(TASTE, "taste.toml").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
    let day = |rng: &mut ChaCha20Rng, span: u64| start + chrono::Days::new(rng.next_u64() % span);
    let subjects: Vec<Subject> = (0..n_subjects)
        .map(|i| Subject {
            record_id: format!("R{i}").into(),
            subject: format!("P{i}").into(),
            site: "UPP".into(),
            arm: if i % 2 == 0 { "pci" } else { "aspiration" }.into(),
            stratum: "site=UPP;sex=F".into(),
            randomised_on: day(&mut rng, 900),
            data_collection_ends: None,
        })
        .collect();
    let types = ["death", "mi", "readmission", "emigration", "ldl"];
    let events: Vec<ReceivedEvent> = (0..n_events)
        .map(|i| {
            let date = day(&mut rng, 1500);
            ReceivedEvent {
                event: Event {
                    event_id: format!("E{i}"),
                    subject: format!("P{}", rng.next_u64() % n_subjects as u64),
                    event_type: types[(rng.next_u64() % 5) as usize].into(),
                    date,
                    code: None,
                    value: None,
                    source: None,
                },
                received_on: date + chrono::Days::new(rng.next_u64() % 30),
            }
        })
        .collect();
    let cutoff = DataCutoff(NaiveDate::from_ymd_opt(2023, 12, 31).unwrap_or_default());
    println!("endpoint derivation: {n_subjects} subjects, {n_events} events, release build");
    for endpoint in &protocol.endpoints {
        let mut best = f64::INFINITY;
        let mut rows = 0;
        for _ in 0..5 {
            let t = Instant::now();
            rows = derive(&protocol.follow_up, endpoint, &subjects, &events, cutoff).len();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "  {:<16} {rows} rows in {:.3} s (best of 5)",
            endpoint.id, best
        );
    }
    Ok(())
}
