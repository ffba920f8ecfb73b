//! Plots: the calibration figure (the tutorial's three plots) and the fooling-rate curve.

use plotters::backend::{BitMapBackend, RGBPixel};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{register_fonts, FAMILY};
use super::{RenderError, RgbImage};
use crate::analysis::calibration::CalibrationReport;

/// Pixel size of [`calibration_figure`].
pub const CALIBRATION_SIZE: (u32, u32) = (1500, 520);
/// Pixel size of [`fooling_rate_plot`].
pub const FOOLING_SIZE: (u32, u32) = (760, 480);
/// Bins of the confidence histograms (0.05 wide).
const HIST_BINS: usize = 20;

const CORRECT: RGBColor = RGBColor(54, 140, 84);
const WRONG: RGBColor = RGBColor(200, 60, 50);
const BARS: RGBColor = RGBColor(66, 118, 190);
const TEXT: RGBColor = RGBColor(30, 30, 30);
/// Grid lines: visible, but quieter than the data.
const GRID: RGBColor = RGBColor(225, 225, 225);

type Area<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, Shift>;
type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
}

fn bold(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Bold)
}

/// Runs `f` on a white `w x h` canvas and returns the picture.
fn canvas(
    w: u32,
    h: u32,
    f: impl FnOnce(&Area<'_>) -> PlotResult,
) -> Result<RgbImage, RenderError> {
    register_fonts();
    let mut img = RgbImage::new(w, h, [255; 3]);
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut img.data, (w, h))
            .map_err(RenderError::plot)?;
        let root = backend.into_drawing_area();
        f(&root).map_err(RenderError::plot)?;
        root.present().map_err(RenderError::plot)?;
    }
    Ok(img)
}

/// Counts of `values` in `bins` equal bins over [0, 1] (1.0 in the last).
fn histogram(values: &[f32], bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins];
    for &v in values {
        counts[((v * bins as f32) as usize).min(bins - 1)] += 1;
    }
    counts
}

fn confidence_histogram(
    area: &Area<'_>,
    values: &[f32],
    caption: &str,
    color: RGBColor,
) -> PlotResult {
    let counts = histogram(values, HIST_BINS);
    let ymax = counts.iter().copied().max().unwrap_or(0).max(1) as f32 * 1.08;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, bold(18.0))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(66)
        .build_cartesian_2d(0f32..1f32, 0f32..ymax)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(11)
        .y_labels(8)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(font(14.0))
        .axis_desc_style(font(15.0))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_desc("confidence (max posterior)")
        .y_desc("digits")
        .draw()?;
    let w = 1.0 / HIST_BINS as f32;
    chart.draw_series(
        counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let x0 = i as f32 * w;
                Rectangle::new(
                    [(x0 + w * 0.06, 0.0), (x0 + w * 0.94, c as f32)],
                    color.filled(),
                )
            }),
    )?;
    if values.is_empty() {
        area.draw(&Text::new(
            "none",
            (
                area.dim_in_pixel().0 as i32 / 2,
                area.dim_in_pixel().1 as i32 / 2,
            ),
            font(18.0)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn reliability_bars(area: &Area<'_>, report: &CalibrationReport) -> PlotResult {
    let mut chart = ChartBuilder::on(area)
        .caption("Accuracy per confidence bin", bold(18.0))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(66)
        .build_cartesian_2d(0f32..1f32, 0f32..1.12f32)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(11)
        .y_labels(7)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| {
            if *y <= 1.0001 {
                format!("{y:.1}")
            } else {
                String::new()
            }
        })
        .label_style(font(14.0))
        .axis_desc_style(font(15.0))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_desc("confidence bin (numbers: digits per bin)")
        .y_desc("accuracy")
        .draw()?;
    chart.draw_series(report.bins.iter().filter(|b| b.count > 0).map(|b| {
        let w = b.upper - b.lower;
        Rectangle::new(
            [(b.lower + w * 0.06, 0.0), (b.upper - w * 0.06, b.accuracy)],
            BARS.filled(),
        )
    }))?;
    chart
        .draw_series(LineSeries::new(
            [(0f32, 0f32), (1.0, 1.0)],
            ShapeStyle::from(&RGBColor(120, 120, 120)).stroke_width(2),
        ))?
        .label("perfect calibration")
        .legend(|(x, y)| {
            PathElement::new(
                [(x, y), (x + 20, y)],
                RGBColor(120, 120, 120).stroke_width(2),
            )
        });
    chart
        .draw_series(
            report
                .bins
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| Circle::new((b.mean_confidence, b.accuracy), 4, WRONG.filled())),
        )?
        .label("bin mean confidence")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, WRONG.filled()));
    chart.draw_series(report.bins.iter().filter(|b| b.count > 0).map(|b| {
        Text::new(
            b.count.to_string(),
            // Above both the bar and the mean-confidence dot, so neither hides the number.
            (
                (b.lower + b.upper) / 2.0,
                b.accuracy.max(b.mean_confidence) + 0.025,
            ),
            font(12.0)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(13.0))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

/// The calibration figure: histograms of the confidence (max posterior) of correctly and of
/// wrongly classified digits, and accuracy per confidence bin with the number of digits per bin
/// above each bar, the diagonal of perfect calibration and each bin's mean confidence. The
/// overall title is `title` followed by the ECE, the accuracy and the number of digits.
/// Size: [`CALIBRATION_SIZE`].
pub fn calibration_figure(
    report: &CalibrationReport,
    title: &str,
) -> Result<RgbImage, RenderError> {
    let (w, h) = CALIBRATION_SIZE;
    let heading = format!(
        "{title} \u{2014} ECE {:.4} ({} bins), accuracy {:.2}%, {} digits",
        report.ece,
        report.bins.len(),
        report.accuracy * 100.0,
        report.samples()
    );
    canvas(w, h, |root| {
        root.fill(&WHITE)?;
        let (top, body) = root.split_vertically(48);
        top.draw(&Text::new(
            heading.as_str(),
            (w as i32 / 2, 26),
            bold(22.0)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let panels = body.split_evenly((1, 3));
        confidence_histogram(
            &panels[0],
            &report.confidences_correct,
            &format!(
                "Correctly classified ({})",
                report.confidences_correct.len()
            ),
            CORRECT,
        )?;
        confidence_histogram(
            &panels[1],
            &report.confidences_wrong,
            &format!("Misclassified ({})", report.confidences_wrong.len()),
            WRONG,
        )?;
        reliability_bars(&panels[2], report)
    })
}

/// Fooling rate (in %, 0..100 on the y axis) against the scale of the added direction (or the
/// FGSM epsilon, per `x_label`); `points` are `(x, rate in [0, 1])` as returned by
/// `analysis::fooling::fooling_sweep`. Each point is labelled with its rate.
/// Size: [`FOOLING_SIZE`].
pub fn fooling_rate_plot(
    points: &[(f32, f32)],
    x_label: &str,
    title: &str,
) -> Result<RgbImage, RenderError> {
    if points.is_empty() || points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return Err(RenderError::Input(format!(
            "fooling plot: {} points, all must be finite",
            points.len()
        )));
    }
    let (w, h) = FOOLING_SIZE;
    let xmin = points.iter().map(|p| p.0).fold(f32::INFINITY, f32::min);
    let xmax = points.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max);
    let pad = if xmax > xmin {
        (xmax - xmin) * 0.05
    } else {
        0.5
    };
    let pts: Vec<(f32, f32)> = points.iter().map(|&(x, r)| (x, r * 100.0)).collect();
    canvas(w, h, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, bold(20.0))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((xmin - pad)..(xmax + pad), 0f32..108f32)?;
        chart
            .configure_mesh()
            .x_labels(10)
            .y_labels(12)
            .y_label_formatter(&|y| {
                if *y <= 100.0 {
                    format!("{y:.0}%")
                } else {
                    String::new()
                }
            })
            .label_style(font(14.0))
            .axis_desc_style(font(16.0))
            .x_desc(x_label)
            .y_desc("fooling rate")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(LineSeries::new(pts.iter().copied(), BARS.stroke_width(3)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, BARS.filled())))?;
        chart.draw_series(pts.iter().map(|&(x, y)| {
            Text::new(
                format!("{y:.1}%"),
                (x, y + 2.0),
                font(13.0)
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::calibration::reliability;

    fn report() -> CalibrationReport {
        // 3 classes, varied confidences, some wrong.
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..300 {
            let c = 0.34 + 0.66 * (i as f32 / 300.0);
            let r = (1.0 - c) / 2.0;
            probs.extend_from_slice(&[c, r, r]);
            labels.push(if i % 4 == 0 { 1 } else { 0 });
        }
        reliability(&probs, &labels, 3, 10).unwrap()
    }

    fn ink(
        img: &RgbImage,
        x0: u32,
        x1: u32,
        y0: u32,
        y1: u32,
        pred: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| pred(img.pixel(x, y).unwrap()))
            .count()
    }

    #[test]
    fn histogram_puts_one_in_the_last_bin() {
        assert_eq!(histogram(&[0.0, 0.049, 0.05, 1.0, 0.99], 20)[..2], [2, 1]);
        assert_eq!(histogram(&[1.0, 0.99], 20)[19], 2);
    }

    #[test]
    fn calibration_figure_draws_three_panels_and_a_title() {
        let img = calibration_figure(&report(), "test").unwrap();
        assert_eq!((img.width, img.height), CALIBRATION_SIZE);
        // Title band has dark text.
        assert!(ink(&img, 300, 1200, 0, 48, |p| p[0] < 100) > 300);
        // Green bars in the first panel, red bars in the second, blue in the third.
        let green = |p: [u8; 3]| p == [54, 140, 84];
        let red = |p: [u8; 3]| p == [200, 60, 50];
        let blue = |p: [u8; 3]| p == [66, 118, 190];
        assert!(ink(&img, 0, 500, 48, 520, green) > 1000);
        assert!(ink(&img, 500, 1000, 48, 520, red) > 1000);
        assert_eq!(ink(&img, 500, 1000, 48, 520, green), 0);
        assert!(ink(&img, 1000, 1500, 48, 520, blue) > 1000);
    }

    #[test]
    fn fooling_plot_has_size_and_line() {
        let img =
            fooling_rate_plot(&[(0.0, 0.0), (1.0, 0.3), (2.0, 0.8)], "scale", "Fooling").unwrap();
        assert_eq!((img.width, img.height), FOOLING_SIZE);
        assert!(ink(&img, 0, 760, 0, 480, |p| p == [66, 118, 190]) > 500);
        assert!(fooling_rate_plot(&[], "x", "t").is_err());
        assert!(fooling_rate_plot(&[(f32::NAN, 0.0)], "x", "t").is_err());
    }
}
