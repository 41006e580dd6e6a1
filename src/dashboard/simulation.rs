//! The HTML form of `rrct simulate`: one self-contained page (inline SVG, no scripts) with the
//! operating characteristics and their distributions, for the statistician's design review.

use askama::Template;
use plotters::prelude::*;

use super::charts::{axis_max, render, FONT, GRID, INK, RECRUITED, TARGET};
use crate::sim::SimulationReport;

#[derive(Template)]
#[template(path = "dashboard/simulation.html")]
struct SimulationPage<'a> {
    r: &'a SimulationReport,
    json: String,
    cards: Vec<(String, String)>,
    looks: Vec<LookRow>,
    stopping_chart: String,
    duration_chart: String,
    hazard_ratio_chart: String,
}

struct LookRow {
    look: usize,
    fraction: String,
    events: String,
    held: String,
    stop: String,
    cumulative: String,
}

fn pct(p: f64) -> String {
    format!("{:.1}%", 100.0 * p)
}

/// Render the report as one HTML page.
pub fn report(r: &SimulationReport) -> Result<String, askama::Error> {
    let mut cumulative = 0.0;
    let looks = r
        .looks
        .iter()
        .enumerate()
        .map(|(k, &t)| {
            cumulative += r.stop_probability[k];
            LookRow {
                look: k + 1,
                fraction: format!("{t:.2}"),
                events: format!("{:.0}", (t * f64::from(r.planned_events)).ceil()),
                held: pct(r.look_probability[k]),
                stop: pct(r.stop_probability[k]),
                cumulative: pct(cumulative),
            }
        })
        .collect();
    let cards = vec![
        (
            pct(r.rejection_rate),
            format!(
                "reject H0 (± {} Monte Carlo SE)",
                pct(r.rejection_rate_mcse)
            ),
        ),
        (
            format!("{:.0}", r.expected_subjects),
            "expected subjects".into(),
        ),
        (
            format!("{:.0}", r.expected_events),
            "expected events".into(),
        ),
        (
            format!("{:.1}", r.expected_duration_months),
            "expected duration (months)".into(),
        ),
        (
            r.median_hazard_ratio
                .map_or("–".into(), |h| format!("{h:.3}")),
            "median hazard ratio at the last analysis".into(),
        ),
        (
            format!("{:.1}", r.balance.overall.mean),
            "mean final imbalance".into(),
        ),
        (
            pct(r.correct_guess_rate),
            "correct guesses within strata".into(),
        ),
    ];
    let months: Vec<f64> = r
        .outcomes
        .iter()
        .map(|o| f64::from(o.duration_days) / (365.25 / 12.0))
        .collect();
    let hrs: Vec<f64> = r.outcomes.iter().filter_map(|o| o.hazard_ratio).collect();
    let json = serde_json::to_string_pretty(r).map_err(|e| askama::Error::Custom(Box::new(e)))?;
    SimulationPage {
        r,
        json,
        cards,
        looks,
        stopping_chart: stopping_chart(&r.stop_probability),
        duration_chart: histogram(
            "Duration to the last analysis (months) over simulated trials",
            "months",
            &months,
        ),
        hazard_ratio_chart: histogram(
            "Estimated hazard ratio at the last analysis over simulated trials",
            "hazard ratio",
            &hrs,
        ),
    }
    .render()
}

/// Bars: probability of stopping for efficacy at each look, and the cumulative rejection
/// probability as a line.
fn stopping_chart(stop: &[f64]) -> String {
    render(
        "Probability of stopping for efficacy at each look",
        (720, 280),
        |area| {
            area.fill(&WHITE)?;
            let n = stop.len();
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(34)
                .y_label_area_size(52)
                .build_cartesian_2d((1..n).into_segmented(), 0f64..1f64)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(GRID.mix(0.4))
                .bold_line_style(GRID)
                .x_desc("look")
                .y_desc("probability")
                .y_label_formatter(&|p| format!("{:.0}%", p * 100.0))
                .label_style((FONT, 13).into_font().color(&INK))
                .draw()?;
            chart.draw_series(stop.iter().enumerate().map(|(k, &p)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(k + 1), 0.0),
                        (SegmentValue::Exact(k + 2), p),
                    ],
                    RECRUITED.filled(),
                );
                bar.set_margin(0, 0, 20, 20);
                bar
            }))?;
            let mut cumulative = 0.0;
            let points: Vec<(SegmentValue<usize>, f64)> = stop
                .iter()
                .enumerate()
                .map(|(k, &p)| {
                    cumulative += p;
                    (SegmentValue::CenterOf(k + 1), cumulative)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), TARGET.stroke_width(2)))?
                .label("cumulative")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], TARGET.stroke_width(2)));
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, TARGET.filled())),
            )?;
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(GRID)
                .label_font((FONT, 13).into_font().color(&INK))
                .draw()?;
            Ok(())
        },
    )
}

/// A histogram of `values` in about 30 bins.
fn histogram(title: &str, x_desc: &str, values: &[f64]) -> String {
    render(title, (720, 260), |area| {
        area.fill(&WHITE)?;
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return Ok(());
        }
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = if hi > lo { (hi - lo) / 30.0 } else { 1.0 };
        let bins = if hi > lo { 30 } else { 1 };
        let mut counts = vec![0u64; bins];
        for v in &finite {
            let b = (((v - lo) / width) as usize).min(bins - 1);
            counts[b] += 1;
        }
        let top = axis_max(counts.iter().copied().max().unwrap_or(1) as f64);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..(lo + width * bins as f64), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(GRID.mix(0.4))
            .bold_line_style(GRID)
            .x_desc(x_desc)
            .y_desc("trials")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 13).into_font().color(&INK))
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(b, &c)| {
            let x0 = lo + width * b as f64;
            Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], RECRUITED.filled())
        }))?;
        Ok(())
    })
}
