//! Speed of the survival statistics on a large trial-sized data set: Efron Cox with three
//! covariates, the log-rank test and Kaplan–Meier by arm, on 1,000,000 generated rows with
//! integer-day times (a few thousand distinct times, so heavy ties).
//!
//! `cargo bench --bench stats` (release build). Targets from issue 5: Cox under 0.25 s,
//! log-rank and Kaplan–Meier under 0.1 s each, memory under 500 MB. Options through the
//! environment: RRCT_BENCH_ROWS (default 1,000,000), RRCT_BENCH_REPEAT (default 5),
//! RRCT_BENCH_CSV=FILE also writes the data set there (`benches/stats_vs_r.sh` uses it to time
//! R on the very same rows). Without `--bench` (as `cargo test --benches` runs it) it runs small.

use std::io::Write;
use std::time::{Duration, Instant};

use rrct::stats::{self, Covariate, CoxData, CoxOptions, KmOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: a small, fixed, documented generator so the data set is the same everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform on (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A two-arm trial: treatment (0/1), age (years, one decimal) and a 0–4 score; exponential
/// event times with hazard ratio 0.75 for treatment; uniform censoring over 0.5–10 years;
/// times rounded up to whole days.
struct Trial {
    time: Vec<f64>,
    event: Vec<bool>,
    trt: Vec<f64>,
    age: Vec<f64>,
    score: Vec<f64>,
}

fn generate(n: usize) -> Trial {
    let mut rng = SplitMix64(20_240_501);
    let mut t = Trial {
        time: Vec::with_capacity(n),
        event: Vec::with_capacity(n),
        trt: Vec::with_capacity(n),
        age: Vec::with_capacity(n),
        score: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let trt = f64::from(u8::from(rng.uniform() < 0.5));
        let age = (650.0 + 100.0 * rng.normal()).round() / 10.0;
        let score = (rng.uniform() * 5.0).floor();
        let hazard = 0.0003 * (-0.2877 * trt + 0.02 * (age - 65.0) + 0.1 * score).exp();
        let event_time = -rng.uniform().ln() / hazard;
        let censor_time = 182.0 + rng.uniform() * (3652.0 - 182.0);
        t.time.push(event_time.min(censor_time).ceil());
        t.event.push(event_time <= censor_time);
        t.trt.push(trt);
        t.age.push(age);
        t.score.push(score);
    }
    t
}

fn write_csv(t: &Trial, path: &str) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "time,status,trt,age,score")?;
    for i in 0..t.time.len() {
        writeln!(
            w,
            "{},{},{},{},{}",
            t.time[i],
            u8::from(t.event[i]),
            t.trt[i],
            t.age[i],
            t.score[i]
        )?;
    }
    w.flush()
}

/// Peak resident memory of this process in MB (Linux), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn time_it<T>(repeat: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(repeat);
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let value = f();
        times.push(start.elapsed());
        last = Some(value);
    }
    times.sort();
    let value = last.expect("at least one run");
    (times[0], times[times.len() / 2], value)
}

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick {
        20_000
    } else {
        env_usize("RRCT_BENCH_ROWS", 1_000_000)
    };
    let repeat = if quick {
        1
    } else {
        env_usize("RRCT_BENCH_REPEAT", 5)
    };
    let trial = generate(n);
    if let Ok(path) = std::env::var("RRCT_BENCH_CSV") {
        write_csv(&trial, &path)?;
        println!("wrote {n} rows to {path}");
    }
    let events = trial.event.iter().filter(|&&e| e).count();
    let distinct = {
        let mut t = trial.time.clone();
        t.sort_by(f64::total_cmp);
        t.dedup();
        t.len()
    };
    println!(
        "stats benchmark: {n} rows, {events} events, {distinct} distinct times, best and median of {repeat}"
    );
    let arm: Vec<usize> = trial.trt.iter().map(|&x| x as usize).collect();

    let (best, median, fit) = time_it(repeat, || {
        let data = CoxData {
            time: &trial.time,
            event: &trial.event,
            covariates: vec![
                Covariate {
                    name: "trt",
                    values: &trial.trt,
                },
                Covariate {
                    name: "age",
                    values: &trial.age,
                },
                Covariate {
                    name: "score",
                    values: &trial.score,
                },
            ],
            strata: None,
        };
        stats::cox_ph(&data, &CoxOptions::default())
    });
    let fit = fit?;
    let coefs: Vec<String> = fit
        .coefficients
        .iter()
        .map(|c| format!("{}={:.6}", c.name, c.coef.unwrap_or(f64::NAN)))
        .collect();
    println!(
        "{:<28}{:>10.1} ms best{:>10.1} ms median   target 250 ms   ({} iterations; {})",
        "cox efron, 3 covariates",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        fit.iterations,
        coefs.join(", ")
    );

    let (best, median, test) = time_it(repeat, || {
        stats::log_rank(&trial.time, &trial.event, &arm, 2, None)
    });
    let test = test?;
    println!(
        "{:<28}{:>10.1} ms best{:>10.1} ms median   target 100 ms   (chisq {:.4})",
        "log-rank, 2 arms",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        test.chisq
    );

    let (best, median, curves) = time_it(repeat, || {
        stats::kaplan_meier(
            &trial.time,
            &trial.event,
            Some((&arm, 2)),
            &KmOptions::default(),
        )
    });
    let curves = curves?;
    let medians: Vec<String> = curves
        .iter()
        .map(|c| format!("{:?}", c.median().median))
        .collect();
    println!(
        "{:<28}{:>10.1} ms best{:>10.1} ms median   target 100 ms   (medians {})",
        "kaplan-meier, 2 arms",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        medians.join(", ")
    );
    if let Some(mb) = peak_rss_mb() {
        println!("peak memory {mb:.0} MB (target 500 MB)");
    }
    Ok(())
}
