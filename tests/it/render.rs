//! The render pieces end to end through the public API: pictures saved as PNG files that decode
//! to the documented sizes, and a report page that embeds each of them.

#![cfg(feature = "render")]

use softnet::analysis::calibration::{most_confident_mistakes, reliability};
use softnet::render::digits::digits_grid;
use softnet::render::plots::{calibration_figure, fooling_rate_plot, CALIBRATION_SIZE};
use softnet::render::report::{base64_encode, HtmlReport};
use softnet::render::weights::{weights_grid, weights_grid_size};

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap();
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn pictures_and_report_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<u8> = (0..25 * 784).map(|i| (i * 7 % 256) as u8).collect();
    let captions: Vec<String> = (0..25).map(|i| format!("label {}", i % 10)).collect();
    let digits = digits_grid(&images, &captions, 5).unwrap();
    digits.save_png(dir.path().join("digits.png")).unwrap();
    assert_eq!(png_size(&dir.path().join("digits.png")), (660, 770));

    let w: Vec<f32> = (0..7840)
        .map(|i| ((i % 97) as f32 - 48.0) / 100.0)
        .collect();
    let titles: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let cols: Vec<usize> = (0..10).collect();
    let weights = weights_grid(&w, 784, 10, &cols, &titles, 5, None).unwrap();
    weights.save_png(dir.path().join("weights.png")).unwrap();
    assert_eq!(
        png_size(&dir.path().join("weights.png")),
        weights_grid_size(10, 28, 5, false)
    );

    // 3 classes, 100 samples: class = i % 3, confidence rising, every 5th wrong.
    let mut probs = Vec::new();
    let mut labels = Vec::new();
    for i in 0..100usize {
        let c = 0.4 + 0.6 * i as f32 / 100.0;
        let mut row = [(1.0 - c) / 2.0; 3];
        row[i % 3] = c;
        probs.extend_from_slice(&row);
        labels.push(if i % 5 == 0 {
            ((i + 1) % 3) as u8
        } else {
            (i % 3) as u8
        });
    }
    let report = reliability(&probs, &labels, 3, 10).unwrap();
    assert_eq!(report.bins.iter().map(|b| b.count).sum::<usize>(), 100);
    assert_eq!(report.confidences_wrong.len(), 20);
    let cal = calibration_figure(&report, "it").unwrap();
    cal.save_png(dir.path().join("calibration.png")).unwrap();
    assert_eq!(
        png_size(&dir.path().join("calibration.png")),
        CALIBRATION_SIZE
    );
    let fool = fooling_rate_plot(&[(0.0, 0.01), (1.0, 0.5)], "scale", "fooling").unwrap();

    let mistakes = most_confident_mistakes(&probs, &labels, 3, 3).unwrap();
    assert_eq!(mistakes[0].index, 95);
    let mut confusion = vec![0u64; 9];
    confusion[0] = 27;
    confusion[4] = 26;
    confusion[8] = 27;
    confusion[1] = 20;
    let pngs = [
        digits.encode_png().unwrap(),
        weights.encode_png().unwrap(),
        cal.encode_png().unwrap(),
        fool.encode_png().unwrap(),
    ];
    let mut html = HtmlReport::new("it");
    html.numbers(&[("test accuracy", format!("{:.2}%", report.accuracy * 100.0))]);
    for (i, p) in pngs.iter().enumerate() {
        html.figure(p, &format!("figure {i}"));
    }
    html.confusion_matrix(&confusion, 3).unwrap();
    html.confident_mistakes(&pngs[0], &mistakes);
    let path = dir.path().join("report.html");
    html.save(&path).unwrap();
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(page.contains("<td>80.00%</td>"));
    assert_eq!(page.matches("<img ").count(), 5);
    for p in &pngs {
        assert!(page.contains(&base64_encode(p)));
    }
    assert!(page.contains("<td class=\"diag\">26</td>"));
}
