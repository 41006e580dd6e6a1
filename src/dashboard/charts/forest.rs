//! Forest plot: a hazard ratio with its confidence interval per subgroup, on a log axis, with
//! the overall effect as a diamond and the line of no effect at 1.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{render, ARM_COLOURS, FONT, INK};

/// One row of a forest plot. Rows without an estimate are listed with a note instead of a mark.
pub struct ForestRow {
    pub label: String,
    pub hr: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The overall effect, drawn as a diamond.
    pub overall: bool,
}

/// Widest axis: 1/8 to 8. Estimates and limits beyond it (a subgroup with events in one arm
/// only has an infinite estimate) are drawn to the edge with an arrow.
const AXIS_LIMIT_LOG2: f64 = 3.0;

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

/// Draw the rows of hazard ratios top to bottom under `title`.
pub fn forest(title: &str, rows: &[ForestRow]) -> String {
    ratio_forest(title, rows, "Hazard ratio")
}

/// Draw rows of any ratio (`measure`: hazard ratio, rate ratio) top to bottom under `title`.
pub fn ratio_forest(title: &str, rows: &[ForestRow], measure: &str) -> String {
    let height = 70 + 28 * rows.len().max(1) as u32;
    render(title, (720, height), |area| {
        area.fill(&WHITE)?;
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        let (lo, hi) = limits(rows);
        // The axis is linear in log2(HR), labelled with the hazard ratio: a log axis whose
        // ticks fall on powers of two.
        let log = |v: f64| v.log2();
        // Row i is centred at y = n - i - 0.5, so the first row is at the top.
        let centre = |i: usize| (n - i) as f64 - 0.5;
        let (labels_area, plot_area) = area.split_horizontally(230);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(12)
            .x_label_area_size(40)
            .build_cartesian_2d(log(lo)..log(hi), 0f64..n as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_x_mesh()
            .x_labels((log(hi) - log(lo)) as usize + 1)
            .x_label_formatter(&|x| {
                let v = 2f64.powf(*x);
                if v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                }
            })
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 13).into_font().color(&INK))
            .x_desc(format!(
                "{measure} (log scale); left of 1 favours the experimental arm"
            ))
            .draw()?;
        // Subgroup names to the left, level with their rows.
        let name_style = (FONT, 13)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let (_, y) = chart.backend_coord(&(log(lo), centre(i)));
            labels_area.draw(&Text::new(r.label.clone(), (222, y), name_style.clone()))?;
        }
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (0.0, n as f64)],
            5,
            4,
            INK.stroke_width(1),
        ))?;
        let colour = ARM_COLOURS[0];
        let clip = |v: f64| log(v.clamp(lo, hi));
        let note = (FONT, 12)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let y = centre(i);
            let Some(hr) = r.hr.filter(|v| v.is_finite() && *v > 0.0) else {
                chart.draw_series([Text::new("not estimable", (log(lo), y), note.clone())])?;
                continue;
            };
            let lower = r.lower.filter(|v| *v > 0.0).unwrap_or(lo);
            let upper = r.upper.filter(|v| v.is_finite()).unwrap_or(hi);
            if r.overall {
                chart.draw_series([Polygon::new(
                    vec![
                        (clip(lower), y),
                        (clip(hr), y + 0.32),
                        (clip(upper), y),
                        (clip(hr), y - 0.32),
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
            for (end, inside) in [(lower, log(lo) + 0.15), (upper, log(hi) - 0.15)] {
                if end <= lo || end >= hi {
                    let tip = clip(end);
                    chart.draw_series([PathElement::new(
                        vec![(inside, y + 0.18), (tip, y), (inside, y - 0.18)],
                        colour.stroke_width(2),
                    )])?;
                }
            }
            chart.draw_series([Rectangle::new(
                [(clip(hr) - 0.07, y - 0.18), (clip(hr) + 0.07, y + 0.18)],
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
}
