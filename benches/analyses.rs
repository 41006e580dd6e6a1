//! Speed of the competing-risk and count statistics on 100,000 generated subjects: the
//! Aalen–Johansen cumulative incidence by arm with Gray's test, the Fine–Gray model (arm and
//! age) and negative binomial (and Poisson) regression of counts with a log-exposure offset.
//!
//! `cargo bench --bench analyses` (release build). Targets from issue 17: negative binomial
//! under 100 ms, Aalen–Johansen + Gray under 100 ms, Fine–Gray under 1 s. Options through the
//! environment: RRCT_BENCH_ROWS (default 100,000), RRCT_BENCH_REPEAT (default 5),
//! RRCT_BENCH_CSV_DIR=DIR also writes `competing.csv` and `counts.csv` there
//! (`benches/analyses_vs_r.sh` times R on the very same rows). Without `--bench` (as
//! `cargo test --benches` runs it) it runs small.

use std::io::Write;
use std::time::{Duration, Instant};

use rrct::stats::{
    competing,
    finegray::{fine_gray, FineGrayData},
    rates::{fit_rates, CountData, CountModel},
    Covariate, DEFAULT_CONF_LEVEL,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: a small, fixed generator so the data sets are the same everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// Gamma(shape, 1) by Marsaglia–Tsang (shape >= 1) with the boost for shape < 1.
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.uniform().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }
    fn poisson(&mut self, mean: f64) -> f64 {
        // Inversion: means here are small.
        let (mut k, mut p) = (0.0f64, (-mean).exp());
        let mut cdf = p;
        let u = self.uniform();
        while u > cdf && p > 0.0 {
            k += 1.0;
            p *= mean / k;
            cdf += p;
        }
        k
    }
}

/// Competing risks: reinfarction (cause 1, HR 0.8 for the treated) competing with death
/// (cause 2), uniform censoring over 0.5–5 years, integer days.
struct Competing {
    time: Vec<f64>,
    status: Vec<usize>,
    arm: Vec<usize>,
    trt: Vec<f64>,
    age: Vec<f64>,
}

fn competing_data(n: usize) -> Competing {
    let mut rng = SplitMix64(17_170_017);
    let mut d = Competing {
        time: Vec::with_capacity(n),
        status: Vec::with_capacity(n),
        arm: Vec::with_capacity(n),
        trt: Vec::with_capacity(n),
        age: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let trt = usize::from(rng.uniform() < 0.5);
        let age = (700.0 + 90.0 * rng.normal()).round() / 10.0;
        let h1 = 0.0002 * (-0.223 * trt as f64 + 0.01 * (age - 70.0)).exp();
        let h2 = 0.0001 * (0.06 * (age - 70.0)).exp();
        let t1 = -rng.uniform().ln() / h1;
        let t2 = -rng.uniform().ln() / h2;
        let c = 182.0 + rng.uniform() * (1826.0 - 182.0);
        let (t, s) = if t1 <= t2 && t1 <= c {
            (t1, 1)
        } else if t2 < t1 && t2 <= c {
            (t2, 2)
        } else {
            (c, 0)
        };
        d.time.push(t.ceil());
        d.status.push(s);
        d.arm.push(trt);
        d.trt.push(trt as f64);
        d.age.push(age);
    }
    d
}

/// Counts: hospitalisations over 0.25–3 years of follow-up, negative binomial with
/// theta 1.5 and rate ratio 0.75 for the treated.
struct Counts {
    count: Vec<f64>,
    exposure: Vec<f64>,
    trt: Vec<f64>,
}

fn count_data(n: usize) -> Counts {
    let mut rng = SplitMix64(42_170_017);
    let mut d = Counts {
        count: Vec::with_capacity(n),
        exposure: Vec::with_capacity(n),
        trt: Vec::with_capacity(n),
    };
    let theta = 1.5;
    for _ in 0..n {
        let trt = f64::from(u8::from(rng.uniform() < 0.5));
        let years = ((0.25 + rng.uniform() * 2.75) * 100.0).round() / 100.0;
        let mean = 0.6 * years * (-0.2877 * trt).exp();
        let lambda = rng.gamma(theta) / theta * mean;
        d.count.push(rng.poisson(lambda));
        d.exposure.push(years);
        d.trt.push(trt);
    }
    d
}

fn write_files(dir: &str, c: &Competing, k: &Counts) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(format!("{dir}/competing.csv"))?);
    writeln!(w, "time,status,trt,age")?;
    for i in 0..c.time.len() {
        writeln!(w, "{},{},{},{}", c.time[i], c.status[i], c.trt[i], c.age[i])?;
    }
    w.flush()?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(format!("{dir}/counts.csv"))?);
    writeln!(w, "count,years,trt")?;
    for i in 0..k.count.len() {
        writeln!(w, "{},{},{}", k.count[i], k.exposure[i], k.trt[i])?;
    }
    w.flush()
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
    (
        times[0],
        times[times.len() / 2],
        last.expect("at least one run"),
    )
}

fn report(label: &str, best: Duration, median: Duration, target: &str, note: &str) {
    println!(
        "{label:<30}{:>10.1} ms best{:>10.1} ms median   target {target}   ({note})",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
}

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick {
        5_000
    } else {
        env_usize("RRCT_BENCH_ROWS", 100_000)
    };
    let repeat = if quick {
        1
    } else {
        env_usize("RRCT_BENCH_REPEAT", 5)
    };
    let comp = competing_data(n);
    let counts = count_data(n);
    if let Ok(dir) = std::env::var("RRCT_BENCH_CSV_DIR") {
        write_files(&dir, &comp, &counts)?;
        println!("wrote {n} subjects to {dir}/competing.csv and {dir}/counts.csv");
    }
    let e1 = comp.status.iter().filter(|&&s| s == 1).count();
    let e2 = comp.status.iter().filter(|&&s| s == 2).count();
    println!(
        "analyses benchmark: {n} subjects ({e1} cause-1, {e2} cause-2 events), best and median of {repeat}"
    );

    let (best, median, out) = time_it(repeat, || {
        let curves =
            competing::cumulative_incidence(&comp.time, &comp.status, 2, Some((&comp.arm, 2)))?;
        let gray = competing::gray_test(&comp.time, &comp.status, 2, (&comp.arm, 2), None, 0.0)?;
        Ok::<_, rrct::stats::StatsError>((curves, gray))
    });
    let (curves, gray) = out?;
    let last: Vec<String> = curves
        .iter()
        .map(|c| format!("{:.6}", c.cif[0].last().copied().unwrap_or(f64::NAN)))
        .collect();
    report(
        "aalen-johansen + gray, 2 arms",
        best,
        median,
        "100 ms",
        &format!(
            "final cif1 {}; gray cause 1 chisq {:.6}",
            last.join(", "),
            gray[0].test.chisq
        ),
    );

    let crr_rows = env_usize("RRCT_BENCH_CRR_ROWS", 10_000).min(n);
    for (rows, label, target) in [
        (n, "fine-gray, trt + age".to_string(), "1000 ms"),
        (crr_rows, format!("fine-gray subset {crr_rows}"), "-"),
    ] {
        let (best, median, fit) = time_it(repeat, || {
            fine_gray(
                &FineGrayData {
                    time: &comp.time[..rows],
                    status: &comp.status[..rows],
                    causes: 2,
                    cause: 1,
                    covariates: vec![
                        Covariate {
                            name: "trt",
                            values: &comp.trt[..rows],
                        },
                        Covariate {
                            name: "age",
                            values: &comp.age[..rows],
                        },
                    ],
                },
                DEFAULT_CONF_LEVEL,
            )
        });
        let fit = fit?;
        report(
            &label,
            best,
            median,
            target,
            &format!(
                "trt {:.6} (se {:.6}), age {:.6}",
                fit.coefficients[0].coef, fit.coefficients[0].se, fit.coefficients[1].coef
            ),
        );
    }

    for (model, label, target) in [
        (CountModel::Negbin, "negative binomial, trt", "100 ms"),
        (CountModel::Poisson, "poisson, trt", "-"),
    ] {
        let (best, median, fit) = time_it(repeat, || {
            fit_rates(
                &CountData {
                    count: &counts.count,
                    columns: vec![Covariate {
                        name: "trt",
                        values: &counts.trt,
                    }],
                    exposure: Some(&counts.exposure),
                },
                model,
                DEFAULT_CONF_LEVEL,
            )
        });
        let fit = fit?;
        report(
            label,
            best,
            median,
            target,
            &format!(
                "trt {:.6} (se {:.6}){}",
                fit.coefficients[1].coef,
                fit.coefficients[1].se,
                fit.theta
                    .map_or(String::new(), |t| format!(", theta {t:.6}"))
            ),
        );
    }
    Ok(())
}
