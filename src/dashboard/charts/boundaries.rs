//! Group-sequential monitoring: the planned efficacy boundary (z) against information
//! fraction, the lower boundary of a two-sided design, and the z observed at each look held
//! with the boundary recomputed at its observed information.

use plotters::prelude::*;

use super::{render, FONT, GRID, INK, RECRUITED, TARGET};

/// A planned look: information fraction and boundaries.
pub struct PlannedLook {
    pub fraction: f64,
    pub upper: f64,
    /// The lower boundary (two-sided designs).
    pub lower: Option<f64>,
}

/// A look held: observed information fraction, observed z and the boundaries at it.
pub struct HeldLook {
    pub fraction: f64,
    pub z: f64,
    pub upper: f64,
    pub lower: Option<f64>,
}

/// The chart, or an empty drawing when nothing is planned.
pub fn group_sequential(planned: &[PlannedLook], held: &[HeldLook]) -> String {
    render(
        "Group-sequential boundaries and observed z by information fraction",
        (720, 340),
        |area| {
            area.fill(&WHITE)?;
            if planned.is_empty() {
                return Ok(());
            }
            let values = planned
                .iter()
                .flat_map(|p| [Some(p.upper), p.lower])
                .chain(
                    held.iter()
                        .flat_map(|h| [Some(h.z), Some(h.upper), h.lower]),
                )
                .flatten()
                .filter(|v| v.is_finite());
            let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = ((lo - 0.5).floor().max(-8.0), (hi + 0.5).ceil().min(8.0));
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(0f64..1.05, lo..hi)?;
            chart
                .configure_mesh()
                .light_line_style(GRID.mix(0.4))
                .bold_line_style(GRID)
                .x_labels(6)
                .y_labels(8)
                .x_label_formatter(&|x| format!("{x:.1}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .axis_desc_style((FONT, 14))
                .label_style((FONT, 14).into_font().color(&INK))
                .x_desc("Information fraction (events ÷ planned events)")
                .y_desc("z (benefit positive)")
                .draw()?;
            chart.draw_series(LineSeries::new([(0.0, 0.0), (1.05, 0.0)], INK.mix(0.5)))?;
            let upper: Vec<(f64, f64)> = planned.iter().map(|p| (p.fraction, p.upper)).collect();
            chart
                .draw_series(LineSeries::new(upper.clone(), TARGET.stroke_width(2)))?
                .label("Planned efficacy boundary")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], TARGET.stroke_width(2)));
            chart.draw_series(upper.iter().map(|&p| Circle::new(p, 4, TARGET.filled())))?;
            let lower: Vec<(f64, f64)> = planned
                .iter()
                .filter_map(|p| p.lower.map(|l| (p.fraction, l)))
                .collect();
            if !lower.is_empty() {
                chart
                    .draw_series(DashedLineSeries::new(
                        lower.clone(),
                        8,
                        5,
                        TARGET.stroke_width(2),
                    ))?
                    .label("Planned lower boundary")
                    .legend(|(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], TARGET.stroke_width(1))
                    });
                chart.draw_series(lower.iter().map(|&p| Circle::new(p, 4, TARGET.filled())))?;
            }
            if !held.is_empty() {
                chart
                    .draw_series(held.iter().flat_map(|h| {
                        std::iter::once((h.fraction, h.upper))
                            .chain(h.lower.map(|l| (h.fraction, l)))
                            .map(|p| Cross::new(p, 6, TARGET.stroke_width(2)))
                    }))?
                    .label("Boundary at observed information")
                    .legend(|(x, y)| Cross::new((x + 9, y), 5, TARGET.stroke_width(2)));
                let z: Vec<(f64, f64)> = held.iter().map(|h| (h.fraction, h.z)).collect();
                chart
                    .draw_series(LineSeries::new(z.clone(), RECRUITED.stroke_width(2)))?
                    .label("Observed z at each look")
                    .legend(|(x, y)| Circle::new((x + 9, y), 4, RECRUITED.filled()));
                chart.draw_series(z.iter().map(|&p| Circle::new(p, 5, RECRUITED.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::MiddleLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(GRID)
                .label_font((FONT, 13))
                .draw()?;
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_and_observed_series_are_drawn() {
        let planned = [
            PlannedLook {
                fraction: 0.66,
                upper: 2.5,
                lower: Some(-2.5),
            },
            PlannedLook {
                fraction: 1.0,
                upper: 2.0,
                lower: Some(-2.0),
            },
        ];
        let held = [HeldLook {
            fraction: 0.7,
            z: 1.1,
            upper: 2.45,
            lower: Some(-2.45),
        }];
        let svg = group_sequential(&planned, &held);
        for text in [
            "Planned efficacy boundary",
            "Planned lower boundary",
            "Observed z at each look",
        ] {
            assert!(svg.contains(text), "lacks {text}");
        }
        let one_sided = group_sequential(
            &[PlannedLook {
                fraction: 1.0,
                upper: 1.96,
                lower: None,
            }],
            &[],
        );
        assert!(!one_sided.contains("lower boundary"));
    }
}
