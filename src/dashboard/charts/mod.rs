//! Server-side SVG charts (plotters' SVG backend rendering into a `String`): recruitment
//! against the target, per-site bars, Kaplan–Meier curves, group-sequential boundaries
//! ([`boundaries`]) and forest plots ([`forest`]). The functions take figures that the page has
//! already cleared for its reader (suppressed labels included): a chart never looks anything up
//! itself.

pub mod boundaries;
pub mod forest;

pub use boundaries::{group_sequential, HeldLook, PlannedLook};
pub use forest::{difference_forest, forest, ratio_forest, ForestRow};

use chrono::NaiveDate;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::suppress;
use crate::analysis::disclosure::Released;
use crate::stats::km::KaplanMeier;

pub(super) const FONT: &str = "sans-serif";
pub(super) const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
pub(super) const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
pub(super) const TARGET: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
pub(super) const RECRUITED: RGBColor = RGBColor(0x1f, 0x5f, 0x9f);
const ELIGIBLE: RGBColor = RGBColor(0xb8, 0xcf, 0xe6);

/// Colours for arms, in protocol order.
pub const ARM_COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
];

/// The colour of arm number `i` as CSS, for legends drawn in HTML.
pub fn arm_colour_css(i: usize) -> String {
    let c = ARM_COLOURS[i % ARM_COLOURS.len()];
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(super) type DrawResult = Result<(), Box<dyn std::error::Error + 'static>>;

/// Render one chart to an SVG string; a failure is logged and shown as a note, never a 500.
pub(super) fn render(
    title: &str,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> String {
    let mut svg = String::new();
    let outcome = {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&area).and_then(|()| area.present().map_err(|e| e.to_string().into()))
    };
    match outcome {
        Ok(()) => svg.replacen(
            "<svg ",
            &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(title)),
            1,
        ),
        Err(e) => {
            tracing::error!(error = %e, chart = title, "chart rendering failed");
            format!(
                "<p class=\"note\">The chart “{}” could not be drawn.</p>",
                escape(title)
            )
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A nice upper bound for an axis showing values up to `v`.
pub(super) fn axis_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 10.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if step * magnitude >= v * 1.05 {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Cumulative randomisations at the end of each period (`(period end, cumulative)`, ascending)
/// against the target sample size, drawn as a horizontal line when the protocol plans no end
/// date.
pub fn recruitment(points: &[(NaiveDate, u64)], target: Option<u64>) -> String {
    render(
        "Cumulative randomised over time against the target",
        (720, 300),
        |area| {
            area.fill(&WHITE)?;
            let (Some(first), Some(last)) = (points.first(), points.last()) else {
                return Ok(());
            };
            let start = first.0 - chrono::Duration::days(7);
            let days = (last.0 - start).num_days().max(14) as f64;
            let top = axis_max(
                points
                    .iter()
                    .map(|p| p.1)
                    .max()
                    .unwrap_or(0)
                    .max(target.unwrap_or(0)) as f64,
            );
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(34)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..days, 0f64..top)?;
            let date_label = |x: &f64| {
                (start + chrono::Duration::days(*x as i64))
                    .format("%Y-%m-%d")
                    .to_string()
            };
            chart
                .configure_mesh()
                .light_line_style(GRID.mix(0.4))
                .bold_line_style(GRID)
                .x_labels(6)
                .y_labels(6)
                .x_label_formatter(&date_label)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .axis_desc_style((FONT, 14))
                .label_style((FONT, 14).into_font().color(&INK))
                .y_desc("Randomised (cumulative)")
                .draw()?;
            let x = |d: NaiveDate| (d - start).num_days() as f64;
            let mut line = vec![(0.0, 0.0)];
            for (d, n) in points {
                line.push((x(*d), *n as f64));
            }
            chart
                .draw_series(LineSeries::new(line, RECRUITED.stroke_width(3)))?
                .label("Randomised")
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], RECRUITED.stroke_width(3))
                });
            if let Some(t) = target {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, t as f64), (days, t as f64)],
                        8,
                        5,
                        TARGET.stroke_width(2),
                    ))?
                    .label(format!("Target {t}"))
                    .legend(|(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], TARGET.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(GRID)
                .label_font((FONT, 14))
                .draw()?;
            Ok(())
        },
    )
}

/// One site in [`site_bars`], with counts as released.
pub struct SiteBar {
    pub site: String,
    pub eligible: Released,
    pub randomised: Released,
}

/// Eligible patients per site as a light bar with the randomised ones as a dark bar inside it:
/// the dark share of each bar is the site's inclusion rate. Small counts are labelled "<5" and
/// drawn at the suppression limit, withheld counts are not drawn at all, so a bar's length
/// never tells more than its label.
pub fn site_bars(sites: &[SiteBar]) -> String {
    let height = 60 + 34 * sites.len().max(1) as u32;
    render(
        "Eligible and randomised patients per site",
        (720, height),
        |area| {
            area.fill(&WHITE)?;
            let n = sites.len();
            if n == 0 {
                return Ok(());
            }
            let shown = |v: Released| match v {
                Released::Shown(n) => n as f64,
                Released::Small => (suppress::SMALL_COUNT_LIMIT + 1) as f64,
                Released::Withheld => 0.0,
            };
            let top = axis_max(sites.iter().map(|s| shown(s.eligible)).fold(0.0, f64::max) * 1.15);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..top, (0..n).into_segmented())?;
            // Sites top to bottom in the order given.
            let row = |i: usize| n - 1 - i;
            let names: Vec<&str> = sites.iter().map(|s| s.site.as_str()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .light_line_style(GRID.mix(0.4))
                .bold_line_style(GRID)
                .x_labels(6)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_labels(n)
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) if *i < n => names[n - 1 - *i].to_string(),
                    _ => String::new(),
                })
                .label_style((FONT, 14).into_font().color(&INK))
                .draw()?;
            let label_style = (FONT, 13)
                .into_font()
                .color(&INK)
                .pos(Pos::new(HPos::Left, VPos::Center));
            for (i, s) in sites.iter().enumerate() {
                let y = row(i);
                let mut eligible = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (shown(s.eligible), SegmentValue::Exact(y + 1)),
                    ],
                    ELIGIBLE.filled(),
                );
                eligible.set_margin(4, 4, 0, 0);
                let mut randomised = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (shown(s.randomised), SegmentValue::Exact(y + 1)),
                    ],
                    RECRUITED.filled(),
                );
                randomised.set_margin(10, 10, 0, 0);
                chart.draw_series([eligible, randomised])?;
                chart.draw_series([Text::new(
                    format!("{} of {}", s.randomised, s.eligible),
                    (shown(s.eligible) + top * 0.01, SegmentValue::CenterOf(y)),
                    label_style.clone(),
                )])?;
            }
            Ok(())
        },
    )
}

/// One arm's curve in [`kaplan_meier`].
pub struct ArmCurve<'a> {
    pub label: String,
    pub curve: &'a KaplanMeier,
}

/// Kaplan–Meier curves per arm up to `until` days (the horizon, or the last time observed).
pub fn kaplan_meier(title: &str, arms: &[ArmCurve<'_>], until: f64) -> String {
    render(title, (720, 340), |area| {
        area.fill(&WHITE)?;
        let lowest = arms
            .iter()
            .flat_map(|a| {
                a.curve
                    .steps
                    .iter()
                    .filter(|s| s.time <= until)
                    .map(|s| s.survival)
            })
            .fold(1.0f64, f64::min);
        // Zoom in on the range the curves use, in steps of 5 percentage points, with room
        // below the lowest curve for the legend.
        let bottom = ((lowest - 0.3 * (1.0 - lowest) - 0.01) * 20.0)
            .floor()
            .max(0.0)
            / 20.0;
        let mut chart = days_by_share(area, until, bottom..1.0, "Event-free")?;
        for (i, arm) in arms.iter().enumerate() {
            let colour = ARM_COLOURS[i % ARM_COLOURS.len()];
            let mut path = vec![(0.0, 1.0)];
            let mut level = 1.0;
            for s in arm.curve.steps.iter().take_while(|s| s.time <= until) {
                if s.survival != level {
                    path.push((s.time, level));
                    path.push((s.time, s.survival));
                    level = s.survival;
                }
            }
            let end = arm.curve.steps.last().map_or(0.0, |s| s.time).min(until);
            path.push((end, level));
            chart
                .draw_series(LineSeries::new(path, colour.stroke_width(2)))?
                .label(arm.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(GRID)
            .label_font((FONT, 14))
            .draw()?;
        Ok(())
    })
}

/// One arm's cumulative incidence in [`cumulative_incidence`]: `(time, incidence)` steps.
pub struct ArmIncidence<'a> {
    pub label: String,
    pub curve: &'a [(f64, f64)],
}

/// The axes of a curve over days since randomisation (to `until`) against a share (`y`, shown
/// in percent), for the Kaplan–Meier and cumulative incidence charts.
fn days_by_share<'a, 'b>(
    area: &'a Area<'b>,
    until: f64,
    y: std::ops::Range<f64>,
    y_desc: &str,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    Box<dyn std::error::Error + 'static>,
> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..until.max(1.0), y)?;
    chart
        .configure_mesh()
        .light_line_style(GRID.mix(0.4))
        .bold_line_style(GRID)
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}%", 100.0 * y))
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 14).into_font().color(&INK))
        .x_desc("Days since randomisation")
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// Aalen–Johansen cumulative incidence of an endpoint per arm, with its competing events, up to
/// `until` days: the curves rise from 0 (a Kaplan–Meier curve would count the competing
/// events as censored and overstate the incidence).
pub fn cumulative_incidence(title: &str, arms: &[ArmIncidence<'_>], until: f64) -> String {
    render(title, (720, 340), |area| {
        area.fill(&WHITE)?;
        let highest = arms
            .iter()
            .flat_map(|a| a.curve.iter().filter(|s| s.0 <= until).map(|s| s.1))
            .fold(0.0f64, f64::max);
        // In steps of 5 percentage points, with room above the highest curve for the legend.
        let top = ((highest * 1.4 + 0.01) * 20.0).ceil().min(20.0) / 20.0;
        let mut chart = days_by_share(area, until, 0f64..top.max(0.05), "Cumulative incidence")?;
        for (i, arm) in arms.iter().enumerate() {
            let colour = ARM_COLOURS[i % ARM_COLOURS.len()];
            let mut path = vec![(0.0, 0.0)];
            let mut level = 0.0;
            for &(t, v) in arm.curve.iter().take_while(|s| s.0 <= until) {
                if v != level {
                    path.push((t, level));
                    path.push((t, v));
                    level = v;
                }
            }
            let end = arm.curve.last().map_or(0.0, |s| s.0).min(until);
            path.push((end, level));
            chart
                .draw_series(LineSeries::new(path, colour.stroke_width(2)))?
                .label(arm.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(GRID)
            .label_font((FONT, 14))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let svg = recruitment(&[(d("2024-01-07"), 12), (d("2024-01-14"), 30)], Some(100));
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(svg.contains("Target 100"));
        let bars = site_bars(&[
            SiteBar {
                site: "UPP".into(),
                eligible: Released::Shown(9),
                randomised: Released::Small,
            },
            SiteBar {
                site: "KS".into(),
                eligible: Released::Withheld,
                randomised: Released::Withheld,
            },
        ]);
        assert!(
            bars.contains("UPP") && bars.contains("&lt;5 of 9"),
            "{bars}"
        );
        assert!(!bars.contains(">3<"));
        assert!(bars.contains("withheld of withheld"), "{bars}");
        assert_eq!(axis_max(7244.0), 8000.0);
        let curve = [(10.0, 0.1), (40.0, 0.25)];
        let cif = cumulative_incidence(
            "Cumulative incidence: MI",
            &[ArmIncidence {
                label: "Aspiration".into(),
                curve: &curve,
            }],
            365.0,
        );
        assert!(cif.starts_with("<svg role=\"img\""), "{cif}");
        assert!(cif.contains("Cumulative incidence") && cif.contains("Aspiration"));
        let rates = ratio_forest(
            "Rate ratio by diabetes",
            &[ForestRow {
                label: "diabetes = true".into(),
                hr: Some(0.5),
                lower: Some(0.3),
                upper: Some(0.9),
                overall: false,
            }],
            "Rate ratio",
        );
        assert!(rates.contains("Rate ratio (log scale)"), "{rates}");
        assert!(rates.contains("diabetes = true"));
    }
}
