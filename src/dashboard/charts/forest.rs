//! Forest plot: an estimate with its confidence interval per subgroup, with the overall effect
//! as a diamond and the line of no effect — for ratios (hazard and rate ratios) on a log axis
//! with the line at 1, for differences (in means) on a linear axis with the line at 0. One
//! drawing serves both: the scale only maps values to the axis and labels its ticks.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{render, ARM_COLOURS, FONT, INK};

/// One row of a forest plot. Rows without an estimate are listed with a note instead of a mark.
pub struct ForestRow {
    pub label: String,
    /// The estimate (a hazard ratio, rate ratio or difference, as the scale says).
    pub hr: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The overall effect, drawn as a diamond.
    pub overall: bool,
}

/// Widest axis: 1/8 to 8. Estimates and limits beyond it (a subgroup with events in one arm
/// only has an infinite estimate) are drawn to the edge with an arrow.
const AXIS_LIMIT_LOG2: f64 = 3.0;

/// How values map to the axis.
#[derive(Clone, Copy)]
enum Scale {
    /// Ratios: log2 of the value, no effect at 1.
    Ratio,
    /// Differences: the value itself, no effect at 0.
    Difference,
}

impl Scale {
    /// The axis coordinate of a value, when it has one (a ratio must be positive).
    fn at(self, v: f64) -> Option<f64> {
        match self {
            Scale::Ratio => (v.is_finite() && v > 0.0).then(|| v.log2()),
            Scale::Difference => v.is_finite().then_some(v),
        }
    }

    /// The value of an axis coordinate, as its tick reads.
    fn label(self, x: f64) -> String {
        match self {
            Scale::Ratio => {
                let v = 2f64.powf(x);
                if v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                }
            }
            Scale::Difference => {
                let s = format!("{x:.2}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s == "-0" {
                    "0".into()
                } else {
                    s.to_string()
                }
            }
        }
    }
}

/// Axis limits in powers of two around the estimates and intervals, always including 1/2 to 2.
fn limits(rows: &[ForestRow]) -> (f64, f64) {
    let finite = rows
        .iter()
        .flat_map(|r| [r.hr, r.lower, r.upper])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0 && v.log2().abs() <= AXIS_LIMIT_LOG2);
    let (lo, hi) = finite.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = 2f64.powf(lo.log2().floor().max(-AXIS_LIMIT_LOG2));
    let hi = 2f64.powf(hi.log2().ceil().min(AXIS_LIMIT_LOG2));
    (lo.min(0.5), hi.max(2.0))
}

/// Axis limits of a difference, in axis coordinates: the estimates, intervals and 0, with a
/// margin of a tenth of their span on each side.
fn linear_limits(rows: &[ForestRow]) -> (f64, f64) {
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [r.hr, r.lower, r.upper])
        .flatten()
        .filter(|v| v.is_finite())
        .fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let margin = if hi > lo { (hi - lo) / 10.0 } else { 1.0 };
    (lo - margin, hi + margin)
}

/// Draw the rows of hazard ratios top to bottom under `title`.
pub fn forest(title: &str, rows: &[ForestRow]) -> String {
    ratio_forest(title, rows, "Hazard ratio")
}

/// Draw rows of any ratio (`measure`: hazard ratio, rate ratio) top to bottom under `title`,
/// on a log axis with the line of no effect at 1.
pub fn ratio_forest(title: &str, rows: &[ForestRow], measure: &str) -> String {
    let (lo, hi) = limits(rows);
    draw(
        title,
        rows,
        Scale::Ratio,
        (lo.log2(), hi.log2()),
        &format!("{measure} (log scale); left of 1 favours the experimental arm"),
    )
}

/// Draw rows of differences (`measure`: difference in means, experimental minus reference) top
/// to bottom under `title`, on a linear axis with the line of no difference at 0.
pub fn difference_forest(title: &str, rows: &[ForestRow], measure: &str) -> String {
    draw(
        title,
        rows,
        Scale::Difference,
        linear_limits(rows),
        &format!("{measure}; 0 is no difference"),
    )
}

/// The drawing itself; `(lo, hi)` are the axis limits in axis coordinates.
fn draw(title: &str, rows: &[ForestRow], scale: Scale, (lo, hi): (f64, f64), axis: &str) -> String {
    let height = 70 + 28 * rows.len().max(1) as u32;
    render(title, (720, height), |area| {
        area.fill(&WHITE)?;
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        // Marks and arrow heads are sized in axis units: a share of the axis.
        let (mark, arrow) = match scale {
            Scale::Ratio => (0.07, 0.15),
            Scale::Difference => (0.012 * (hi - lo), 0.025 * (hi - lo)),
        };
        // Row i is centred at y = n - i - 0.5, so the first row is at the top.
        let centre = |i: usize| (n - i) as f64 - 0.5;
        let (labels_area, plot_area) = area.split_horizontally(230);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(12)
            .x_label_area_size(40)
            .build_cartesian_2d(lo..hi, 0f64..n as f64)?;
        let ticks = match scale {
            // A tick on every power of two.
            Scale::Ratio => (hi - lo) as usize + 1,
            Scale::Difference => 7,
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_x_mesh()
            .x_labels(ticks)
            .x_label_formatter(&|x| scale.label(*x))
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 13).into_font().color(&INK))
            .x_desc(axis)
            .draw()?;
        // Subgroup names to the left, level with their rows.
        let name_style = (FONT, 13)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let (_, y) = chart.backend_coord(&(lo, centre(i)));
            labels_area.draw(&Text::new(r.label.clone(), (222, y), name_style.clone()))?;
        }
        // The line of no effect: ratio 1, difference 0 (both at coordinate 0).
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (0.0, n as f64)],
            5,
            4,
            INK.stroke_width(1),
        ))?;
        let colour = ARM_COLOURS[0];
        let clip = |x: f64| x.clamp(lo, hi);
        let note = (FONT, 12)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let y = centre(i);
            let Some(est) = r.hr.and_then(|v| scale.at(v)) else {
                chart.draw_series([Text::new("not estimable", (lo, y), note.clone())])?;
                continue;
            };
            // A limit without a coordinate (0 or infinite on a log axis) runs to the edge.
            let lower = r
                .lower
                .and_then(|v| scale.at(v))
                .unwrap_or(f64::NEG_INFINITY);
            let upper = r.upper.and_then(|v| scale.at(v)).unwrap_or(f64::INFINITY);
            if r.overall {
                chart.draw_series([Polygon::new(
                    vec![
                        (clip(lower), y),
                        (clip(est), y + 0.32),
                        (clip(upper), y),
                        (clip(est), y - 0.32),
                    ],
                    INK.filled(),
                )])?;
                continue;
            }
            chart.draw_series([PathElement::new(
                vec![(clip(lower), y), (clip(upper), y)],
                colour.stroke_width(2),
            )])?;
            // An interval running off the axis ends in an arrow head.
            for (end, inside) in [(lower, lo + arrow), (upper, hi - arrow)] {
                if end <= lo || end >= hi {
                    let tip = clip(end);
                    chart.draw_series([PathElement::new(
                        vec![(inside, y + 0.18), (tip, y), (inside, y - 0.18)],
                        colour.stroke_width(2),
                    )])?;
                }
            }
            chart.draw_series([Rectangle::new(
                [(clip(est) - mark, y - 0.18), (clip(est) + mark, y + 0.18)],
                colour.filled(),
            )])?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_labelled_on_a_log_axis_including_one() {
        let row = |label: &str, hr: Option<f64>, overall| ForestRow {
            label: label.into(),
            hr,
            lower: hr.map(|h| h / 2.0),
            upper: hr.map(|h| h * 2.0),
            overall,
        };
        let svg = forest(
            "Subgroups",
            &[
                row("Overall", Some(0.9), true),
                row("sex = F", Some(0.7), false),
                row("sex = M", None, false),
            ],
        );
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        for text in [
            "sex = F",
            "Overall",
            "not estimable",
            "\n1\n</text>",
            "<polygon",
        ] {
            assert!(svg.contains(text), "lacks {text}: {svg}");
        }
        assert_eq!(limits(&[row("x", Some(1.0), false)]), (0.5, 2.0));
        assert_eq!(limits(&[row("x", Some(0.3), false)]), (0.125, 2.0));
        // An infinite estimate does not stretch the axis.
        assert_eq!(limits(&[row("x", Some(6e8), false)]), (0.5, 2.0));
    }

    #[test]
    fn differences_are_drawn_on_a_linear_axis_through_zero() {
        let row = |label: &str, d: Option<f64>, overall| ForestRow {
            label: label.into(),
            hr: d,
            lower: d.map(|d| d - 40.0),
            upper: d.map(|d| d + 40.0),
            overall,
        };
        let rows = [
            row("All patients", Some(-120.0), true),
            row("diabetes = true", Some(-180.0), false),
            row("diabetes = false", None, false),
        ];
        // From -220 to 0 (the line of no difference), a tenth of 220 beyond each end.
        assert_eq!(linear_limits(&rows), (-242.0, 22.0));
        // All above zero: the axis still reaches 0.
        assert_eq!(linear_limits(&[row("x", Some(50.0), false)]), (-9.0, 99.0));
        let svg = difference_forest("Difference in NT-proBNP", &rows, "Difference in means");
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        for text in [
            "diabetes = true",
            "not estimable",
            "Difference in means; 0 is no difference",
            "\n0\n</text>",
            "<polygon",
        ] {
            assert!(svg.contains(text), "lacks {text}: {svg}");
        }
        // Not a log axis: no ratio ticks, and negative values are drawn, not "not estimable".
        assert!(!svg.contains("log scale"));
        assert_eq!(svg.matches("not estimable").count(), 1);
        assert_eq!(Scale::Difference.label(-0.0), "0");
        assert_eq!(Scale::Difference.label(-37.5), "-37.5");
    }
}
