//! `softnet bench --compare BASE.json`: this run against an earlier `--json` run, each
//! computation as its share of the ceiling measured in its own run (so a host that lends
//! less of its cores today does not read as a regression), everything else as a relative
//! change; only changes larger than the spread of the repeats are flagged.

use std::path::{Path, PathBuf};

use super::report::{Metric, Report};

/// Why a baseline file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read.
    #[error("cannot read the baseline {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("the baseline {} is not JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The file is JSON, but not what `softnet bench --json` writes.
    #[error("the baseline {}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

/// Reads the `softnet bench --json` output saved in `path`.
pub fn load_baseline(path: &Path) -> Result<Report, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_baseline(&text, path)
}

/// Parses `text`, the contents of the baseline `path` (named in errors).
pub fn parse_baseline(text: &str, path: &Path) -> Result<Report, BaselineError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| BaselineError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    Report::from_json(&value).map_err(|reason| BaselineError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// How a measurement moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the spread of the repeats (or under [`MIN_RELATIVE_CHANGE`]): not flagged.
    Within,
    Improved,
    Regressed,
}

/// Changes smaller than this share of the base value are never flagged, however tight the
/// repeats: a metric measured once (peak memory) has no spread at all.
pub const MIN_RELATIVE_CHANGE: f64 = 0.01;

/// One measurement of both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    /// `41.2% → 43.0% of ceiling (+1.8 points)` or `0.181 s → 0.190 s (+5.0%)`.
    pub text: String,
    /// The change, in points of the ceiling or in per cent, and the larger of the two runs'
    /// interquartile ranges in the same unit.
    pub delta: f64,
    pub spread: f64,
    pub verdict: Verdict,
}

/// Every measurement of two runs, compared where both have it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub changes: Vec<Change>,
    /// Keys only the base run has, and only this run has (a skipped measurement, another
    /// version of softnet), or whose units differ.
    pub only_base: Vec<String>,
    pub only_new: Vec<String>,
    pub incomparable: Vec<String>,
}

impl Comparison {
    /// The changes flagged as `verdict`.
    pub fn flagged(&self, verdict: Verdict) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.verdict == verdict)
    }
}

/// Compares `new` with `base`, key by key.
pub fn compare(base: &Report, new: &Report) -> Comparison {
    let mut out = Comparison::default();
    for (key, b) in &base.metrics {
        match new.metrics.get(key) {
            None => out.only_base.push(key.clone()),
            Some(n) if n.unit != b.unit => out.incomparable.push(key.clone()),
            Some(n) => out.changes.push(change(key, b, n)),
        }
    }
    out.only_new = new
        .metrics
        .keys()
        .filter(|k| !base.metrics.contains_key(*k))
        .cloned()
        .collect();
    out
}

fn change(key: &str, base: &Metric, new: &Metric) -> Change {
    let verdict = |delta: f64, spread: f64, relative: f64, better: bool| {
        if delta.abs() <= spread || relative.abs() < MIN_RELATIVE_CHANGE {
            Verdict::Within
        } else if better {
            Verdict::Improved
        } else {
            Verdict::Regressed
        }
    };
    if let (Some(b), Some(n)) = (base.share_spread(), new.share_spread()) {
        // Points of the ceiling: a larger share is faster, whatever the unit.
        let points = |s: f64| 100.0 * s;
        let delta = points(n.median - b.median);
        // The repeats' spread, and the ceiling's own: a share is no surer than either.
        let ceiling_range = |m: &Metric| m.work.map_or(0.0, |w| w.ceiling_range);
        let spread = [
            points(b.q3 - b.q1),
            points(n.q3 - n.q1),
            points(b.median) * ceiling_range(base),
            points(n.median) * ceiling_range(new),
        ]
        .into_iter()
        .fold(0.0, f64::max);
        let relative = (n.median - b.median) / b.median;
        let gflops = |m: &Metric| m.gflops().unwrap_or(f64::NAN);
        return Change {
            key: key.to_string(),
            text: format!(
                "{:.1}% → {:.1}% of ceiling ({delta:+.1} points; {:.1} → {:.1} GFLOP/s)",
                points(b.median),
                points(n.median),
                gflops(base),
                gflops(new)
            ),
            delta,
            spread,
            verdict: verdict(delta, spread, relative, delta > 0.0),
        };
    }
    let (b, n) = (base.value, new.value);
    let relative = (n.median - b.median) / b.median;
    let delta = 100.0 * relative;
    let spread_of = |s: super::report::Spread| 100.0 * (s.q3 - s.q1) / s.median.abs();
    let spread = spread_of(b).max(spread_of(n));
    let better = (delta < 0.0) == base.unit.lower_is_better();
    let unit = base.unit.name();
    Change {
        key: key.to_string(),
        text: format!(
            "{} {unit} → {} {unit} ({delta:+.1}%)",
            significant(b.median),
            significant(n.median)
        ),
        delta,
        spread,
        verdict: verdict(delta, spread, relative, better),
    }
}

/// `v` with four significant digits, without an exponent for the sizes bench prints.
fn significant(v: f64) -> String {
    let digits = if v == 0.0 {
        0
    } else {
        (3 - v.abs().log10().floor() as i32).max(0)
    };
    format!("{v:.*}", digits as usize)
}

/// The comparison as `softnet bench --compare` prints it.
pub fn render(base: &Report, new: &Report, comparison: &Comparison, base_path: &Path) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "softnet bench --compare {}: the base run → this run",
        base_path.display()
    ));
    line(format!(
        "ceiling (f32 FMA): {:.0} → {:.0} GFLOP/s on {} → {} thread(s), {:.0} → {:.0} on one; \
         simd {} → {}",
        base.ceiling_gflops,
        new.ceiling_gflops,
        base.threads,
        new.threads,
        base.ceiling_1t_gflops,
        new.ceiling_1t_gflops,
        base.simd,
        new.simd
    ));
    if base.threads != new.threads || base.simd != new.simd {
        line("note: the runs differ in threads or SIMD level; their shares still compare".into());
    }
    let moved = (new.ceiling_gflops / base.ceiling_gflops - 1.0).abs();
    if moved > 0.15 {
        line(format!(
            "note: the ceiling moved by {:.0}% between the runs (the host lent its cores \
             differently): read the GFLOP/s beside the shares, or rerun both when it is quiet",
            100.0 * moved
        ));
    }
    line(String::new());
    let width = comparison
        .changes
        .iter()
        .map(|c| c.key.len())
        .max()
        .unwrap_or(0);
    for c in &comparison.changes {
        let flag = match c.verdict {
            Verdict::Within => "",
            Verdict::Improved => "  improved",
            Verdict::Regressed => "  REGRESSED",
        };
        let unit = if c.text.contains("of ceiling") {
            " points"
        } else {
            "%"
        };
        line(format!(
            "{:<width$}  {}, spread {:.1}{unit}{flag}",
            c.key, c.text, c.spread
        ));
    }
    for (what, keys) in [
        ("only in the base run", &comparison.only_base),
        ("only in this run", &comparison.only_new),
        ("units differ, not compared", &comparison.incomparable),
    ] {
        if !keys.is_empty() {
            line(format!("{what}: {}", keys.join(", ")));
        }
    }
    let regressed = comparison.flagged(Verdict::Regressed).count();
    let improved = comparison.flagged(Verdict::Improved).count();
    line(format!(
        "\n{regressed} regressed, {improved} improved beyond the spread (the larger \
         interquartile range of the two runs' repeats, or of their ceilings' samples, and at \
         least {:.0}%)",
        100.0 * MIN_RELATIVE_CHANGE
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `softnet bench --json` output with the given `"metrics"` object.
    fn run(ceiling: f64, metrics: &str) -> String {
        format!(
            r#"{{"threads": 2, "simd": "avx512", "fma_peak_gflops": {ceiling},
                "fma_peak_1t_gflops": 100.0, "metrics": {{{metrics}}}}}"#
        )
    }

    fn parse(text: &str) -> Report {
        parse_baseline(text, Path::new("base.json")).unwrap()
    }

    /// CNN training at 1000 images/s (quartiles `q1`..`q3`), 0.08 GFLOP an image, under a
    /// ceiling of `ceiling`.
    fn cnn(rate: f64, q1: f64, q3: f64, ceiling: f64) -> String {
        format!(
            r#""cnn_train_images_per_s": {{"median": {rate}, "q1": {q1}, "q3": {q3},
                "repeats": 7, "unit": "1/s", "gflop": 0.08, "ceiling_gflops": {ceiling}}}"#
        )
    }

    #[test]
    fn a_change_beyond_the_spread_of_shares_is_flagged() {
        // 80 → 88 GFLOP/s of 200: 40% → 44% of the ceiling, repeats within ±0.5 points.
        let base = parse(&run(200.0, &cnn(1000.0, 990.0, 1010.0, 200.0)));
        let new = parse(&run(200.0, &cnn(1100.0, 1090.0, 1110.0, 200.0)));
        let c = compare(&base, &new);
        assert_eq!(c.changes.len(), 1);
        let change = &c.changes[0];
        assert_eq!(change.verdict, Verdict::Improved, "{change:?}");
        assert!((change.delta - 4.0).abs() < 1e-9, "{change:?}");
        assert!((change.spread - 0.8).abs() < 1e-9, "{change:?}");
        assert_eq!(
            change.text,
            "40.0% → 44.0% of ceiling (+4.0 points; 80.0 → 88.0 GFLOP/s)"
        );
        let back = compare(&new, &base);
        assert_eq!(back.changes[0].verdict, Verdict::Regressed);
    }

    #[test]
    fn a_slower_run_on_a_slower_machine_is_not_a_regression() {
        // The host lent less: the ceiling fell from 200 to 150 GFLOP/s and the rate by as
        // much. As shares of their own ceilings the two runs are the same.
        let base = parse(&run(200.0, &cnn(1000.0, 990.0, 1010.0, 200.0)));
        let new = parse(&run(150.0, &cnn(750.0, 740.0, 760.0, 150.0)));
        let c = compare(&base, &new);
        assert_eq!(c.changes[0].verdict, Verdict::Within, "{:?}", c.changes[0]);
        assert!(c.changes[0].delta.abs() < 1e-9);
    }

    #[test]
    fn a_ceiling_that_strayed_widens_the_spread() {
        // 40% → 44% of the ceiling with tight repeats, but the new run's ceiling samples
        // spanned a fifth of it: 44% ± 8.8 points could be the same speed.
        let base = parse(&run(200.0, &cnn(1000.0, 990.0, 1010.0, 200.0)));
        let strayed = cnn(1100.0, 1090.0, 1110.0, 200.0).replace(
            "\"ceiling_gflops\"",
            "\"ceiling_range\": 0.2, \"ceiling_gflops\"",
        );
        let new = parse(&run(200.0, &strayed));
        let c = compare(&base, &new);
        assert_eq!(c.changes[0].verdict, Verdict::Within, "{:?}", c.changes[0]);
        assert!(
            (c.changes[0].spread - 8.8).abs() < 1e-9,
            "{:?}",
            c.changes[0]
        );
    }

    #[test]
    fn a_change_within_the_spread_is_not_flagged() {
        // 40% → 41% of the ceiling, but the new run's repeats span 35% to 45%.
        let base = parse(&run(200.0, &cnn(1000.0, 990.0, 1010.0, 200.0)));
        let new = parse(&run(200.0, &cnn(1025.0, 875.0, 1125.0, 200.0)));
        let c = compare(&base, &new);
        assert_eq!(c.changes[0].verdict, Verdict::Within, "{:?}", c.changes[0]);
        assert!((c.changes[0].spread - 10.0).abs() < 1e-9);
    }

    #[test]
    fn measurements_without_work_compare_as_relative_changes() {
        let metric = |median: f64, q1: f64, q3: f64, rss: f64| {
            format!(
                r#""process_s": {{"median": {median}, "q1": {q1}, "q3": {q3}, "repeats": 5,
                    "unit": "s"}}, "peak_rss_mb": {{"median": {rss}, "q1": {rss}, "q3": {rss},
                    "unit": "MB"}}"#
            )
        };
        let base = parse(&run(200.0, &metric(0.200, 0.198, 0.202, 82.0)));
        // 10% slower, repeats within 2%: a regression. Memory 0.5% up: under the floor.
        let slower = metric(0.220, 0.218, 0.222, 82.4);
        let new = parse(&run(200.0, &slower));
        let c = compare(&base, &new);
        let by_key = |k: &str| c.changes.iter().find(|c| c.key == k).unwrap();
        let process = by_key("process_s");
        assert_eq!(process.verdict, Verdict::Regressed, "{process:?}");
        assert_eq!(process.text, "0.2000 s → 0.2200 s (+10.0%)");
        assert_eq!(by_key("peak_rss_mb").verdict, Verdict::Within);
        // Faster is better for a time.
        let c = compare(&new, &base);
        assert_eq!(
            c.changes
                .iter()
                .find(|c| c.key == "process_s")
                .unwrap()
                .verdict,
            Verdict::Improved
        );
    }

    #[test]
    fn keys_of_one_run_only_are_listed_not_compared() {
        let process = r#""process_s": {"median": 0.2, "q1": 0.2, "q3": 0.2, "unit": "s"}"#;
        let base = parse(&run(
            200.0,
            &format!("{process}, {}", cnn(1000.0, 990.0, 1010.0, 200.0)),
        ));
        let new = parse(&run(
            200.0,
            &format!(
                "{process}, \"mlp_epoch_s\": {{\"median\": 0.3, \"q1\": 0.3, \"q3\": 0.3, \
                 \"unit\": \"s\"}}"
            ),
        ));
        let c = compare(&base, &new);
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.only_base, ["cnn_train_images_per_s"]);
        assert_eq!(c.only_new, ["mlp_epoch_s"]);
        let printed = render(&base, &new, &c, Path::new("base.json"));
        assert!(
            printed.contains("only in the base run: cnn_train_images_per_s"),
            "{printed}"
        );
        assert!(
            printed.contains("only in this run: mlp_epoch_s"),
            "{printed}"
        );
        assert!(printed.contains("0 regressed, 0 improved"), "{printed}");
    }

    #[test]
    fn a_bad_baseline_is_a_typed_error_naming_the_file() {
        let path = Path::new("dir/base.json");
        let err = parse_baseline("{\"threads\": 2,", path).unwrap_err();
        assert!(matches!(err, BaselineError::Json { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("the baseline dir/base.json is not JSON"),
            "{err}"
        );
        // JSON, but from `bench --scaling` or an older softnet: no metrics object.
        let err = parse_baseline(r#"{"scaling": []}"#, path).unwrap_err();
        assert!(matches!(err, BaselineError::Format { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("dir/base.json: no \"metrics\" object"),
            "{err}"
        );
        // A measurement with a missing field names the key and the field.
        let err = parse_baseline(
            &run(
                200.0,
                r#""load_s": {"median": 0.1, "q3": 0.1, "unit": "s"}"#,
            ),
            path,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("load_s: \"q1\" is not a finite number"),
            "{err}"
        );
        let err = parse_baseline(
            &run(
                200.0,
                r#""load_s": {"median": 0.1, "q1": 0.1, "q3": 0.1, "unit": "hours"}"#,
            ),
            path,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("load_s: unknown unit \"hours\""),
            "{err}"
        );
        let err = load_baseline(Path::new("/nonexistent/base.json")).unwrap_err();
        assert!(matches!(err, BaselineError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/base.json"), "{err}");
    }
}
