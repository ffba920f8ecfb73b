//! What `softnet bench --json` records of each measurement, beyond its median: the spread of
//! its repeats and, for a computation, its dense-equivalent work and the ceiling measured in
//! the same run, so that `--compare` can read two runs against their own machines' moods.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The median and quartiles of a measurement's repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle sample (the upper of the two middle ones for an even count).
    pub median: f64,
    /// First and third quartiles, linearly interpolated between samples.
    pub q1: f64,
    pub q3: f64,
    /// Samples taken.
    pub count: usize,
}

impl Spread {
    /// The median and quartiles of `samples`.
    ///
    /// # Panics
    /// If `samples` is empty.
    pub fn of(mut samples: Vec<f64>) -> Self {
        assert!(!samples.is_empty(), "a measurement has samples");
        samples.sort_by(f64::total_cmp);
        let quantile = |p: f64| {
            let at = p * (samples.len() - 1) as f64;
            let (below, above) = (at.floor() as usize, at.ceil() as usize);
            samples[below] + (samples[above] - samples[below]) * (at - below as f64)
        };
        Spread {
            median: samples[samples.len() / 2],
            q1: quantile(0.25),
            q3: quantile(0.75),
            count: samples.len(),
        }
    }

    /// A value measured once.
    pub fn once(value: f64) -> Self {
        Spread::of(vec![value])
    }

    /// The same samples through `f`, which must be monotonic (a change of unit, a rate
    /// from a time): quartiles stay quartiles, in order.
    pub fn map(self, f: impl Fn(f64) -> f64) -> Self {
        let (a, b) = (f(self.q1), f(self.q3));
        Spread {
            median: f(self.median),
            q1: a.min(b),
            q3: a.max(b),
            count: self.count,
        }
    }
}

/// What a measurement's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
    Micros,
    /// Items (images, samples) a second.
    PerSecond,
    Megabytes,
}

impl Unit {
    /// The name in the JSON (`"unit"`) and after a printed value.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Millis => "ms",
            Unit::Micros => "us",
            Unit::PerSecond => "1/s",
            Unit::Megabytes => "MB",
        }
    }

    fn from_name(name: &str) -> Option<Unit> {
        [
            Unit::Seconds,
            Unit::Millis,
            Unit::Micros,
            Unit::PerSecond,
            Unit::Megabytes,
        ]
        .into_iter()
        .find(|u| u.name() == name)
    }

    /// Seconds in one of this unit, for a time.
    fn seconds(self) -> Option<f64> {
        match self {
            Unit::Seconds => Some(1.0),
            Unit::Millis => Some(1e-3),
            Unit::Micros => Some(1e-6),
            Unit::PerSecond | Unit::Megabytes => None,
        }
    }

    /// Whether a smaller value is the better one (a time, a size; not a rate).
    pub fn lower_is_better(self) -> bool {
        self != Unit::PerSecond
    }
}

/// A multiply-add ceiling measured in the run: the GFLOP/s some threads reach on
/// register-only FMAs, and how far its samples strayed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    pub gflops: f64,
    /// `(max - min) / gflops` of its samples: the host lends its cores unevenly, and a
    /// share of the ceiling is no surer than the ceiling.
    pub range: f64,
}

impl Ceiling {
    /// The ceiling `gflops` of samples `samples`.
    pub fn new(gflops: f64, samples: &[f64]) -> Self {
        let max = samples.iter().copied().fold(f64::MIN, f64::max);
        let min = samples.iter().copied().fold(f64::MAX, f64::min);
        let range = if samples.is_empty() {
            0.0
        } else {
            (max - min) / gflops
        };
        Ceiling { gflops, range }
    }
}

/// The arithmetic behind a measurement: its dense-equivalent work and the multiply-add
/// ceiling of the threads that did it, measured in the same run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// GFLOP of what was timed (a time), or of one item (a rate).
    pub gflop: f64,
    /// GFLOP/s the same threads reach on register-only FMAs.
    pub ceiling_gflops: f64,
    /// [`Ceiling::range`].
    pub ceiling_range: f64,
}

/// One measurement: its repeats' spread, unit and, for a computation, its work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub value: Spread,
    pub unit: Unit,
    pub work: Option<Work>,
}

impl Metric {
    /// A measurement with no arithmetic to count (loading, a whole process, memory).
    pub fn plain(value: Spread, unit: Unit) -> Self {
        Metric {
            value,
            unit,
            work: None,
        }
    }

    /// A computation of `gflop` (a time's whole work, or a rate's work per item), done
    /// by threads whose ceiling is `ceiling`.
    pub fn computed(value: Spread, unit: Unit, gflop: f64, ceiling: Ceiling) -> Self {
        Metric {
            value,
            unit,
            work: Some(Work {
                gflop,
                ceiling_gflops: ceiling.gflops,
                ceiling_range: ceiling.range,
            }),
        }
    }

    /// The dense-equivalent GFLOP/s of a value of this measurement; None without work.
    pub fn gflops_at(&self, value: f64) -> Option<f64> {
        let work = self.work?;
        match self.unit.seconds() {
            Some(unit) => Some(work.gflop / (value * unit)),
            None if self.unit == Unit::PerSecond => Some(work.gflop * value),
            None => None,
        }
    }

    /// The median's GFLOP/s.
    pub fn gflops(&self) -> Option<f64> {
        self.gflops_at(self.value.median)
    }

    /// The median's share of the ceiling (0 to 1).
    pub fn ceiling_share(&self) -> Option<f64> {
        Some(self.gflops()? / self.work?.ceiling_gflops)
    }

    /// The spread as shares of the ceiling: the quartiles' shares, lower first.
    pub fn share_spread(&self) -> Option<Spread> {
        let ceiling = self.work?.ceiling_gflops;
        // A unit that is neither a time nor a rate has no GFLOP/s, at any value.
        self.gflops()?;
        Some(
            self.value
                .map(|v| self.gflops_at(v).unwrap_or(f64::NAN) / ceiling),
        )
    }

    fn to_json(self) -> Value {
        let mut object = Map::new();
        object.insert("median".into(), json!(self.value.median));
        object.insert("q1".into(), json!(self.value.q1));
        object.insert("q3".into(), json!(self.value.q3));
        object.insert("repeats".into(), json!(self.value.count));
        object.insert("unit".into(), json!(self.unit.name()));
        if let Some(work) = self.work {
            object.insert("gflop".into(), json!(work.gflop));
            object.insert("ceiling_gflops".into(), json!(work.ceiling_gflops));
            object.insert("ceiling_range".into(), json!(work.ceiling_range));
            // For a reader: the compare reads the numbers above.
            object.insert("gflops".into(), json!(self.gflops()));
            object.insert("ceiling_share".into(), json!(self.ceiling_share()));
        }
        Value::Object(object)
    }

    /// Reads what [`Metric::to_json`] wrote; the error says which field is wrong.
    fn from_json(value: &Value) -> Result<Self, String> {
        let number = |field: &str| {
            value[field]
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("\"{field}\" is not a finite number"))
        };
        let unit = value["unit"].as_str().ok_or("\"unit\" is not a string")?;
        let unit = Unit::from_name(unit).ok_or_else(|| format!("unknown unit \"{unit}\""))?;
        let spread = Spread {
            median: number("median")?,
            q1: number("q1")?,
            q3: number("q3")?,
            count: value["repeats"].as_u64().unwrap_or(1) as usize,
        };
        let work = if value.get("gflop").is_some() {
            Some(Work {
                gflop: number("gflop")?,
                ceiling_gflops: number("ceiling_gflops")?,
                ceiling_range: value["ceiling_range"].as_f64().unwrap_or(0.0).max(0.0),
            })
        } else {
            None
        };
        if !(spread.q1 <= spread.median && spread.median <= spread.q3) {
            return Err("the median is not between the quartiles".into());
        }
        if work.is_some_and(|w| w.ceiling_gflops <= 0.0) {
            return Err("\"ceiling_gflops\" is not positive".into());
        }
        Ok(Metric {
            value: spread,
            unit,
            work,
        })
    }
}

/// One run of `softnet bench`: its measurements by key, and where they were taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub metrics: BTreeMap<String, Metric>,
    /// Threads of the multi-threaded measurements.
    pub threads: u64,
    /// The SIMD level the kernels ran at.
    pub simd: String,
    /// The FMA ceiling on `threads` threads and on one, GFLOP/s.
    pub ceiling_gflops: f64,
    pub ceiling_1t_gflops: f64,
}

/// The key of the object that holds the measurements in `softnet bench --json`.
pub const METRICS: &str = "metrics";

impl Report {
    /// Adds a measurement.
    pub fn insert(&mut self, key: &str, metric: Metric) {
        self.metrics.insert(key.to_string(), metric);
    }

    /// The `"metrics"` object of the JSON output.
    pub fn metrics_json(&self) -> Value {
        Value::Object(
            self.metrics
                .iter()
                .map(|(k, m)| (k.clone(), m.to_json()))
                .collect(),
        )
    }

    /// Reads a `softnet bench --json` object; the error says what is missing or wrong.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let metrics = value.get(METRICS).and_then(Value::as_object).ok_or(
            "no \"metrics\" object: not the output of `softnet bench --json` (or of a \
                 softnet too old to record the spread of its repeats)",
        )?;
        let metrics = metrics
            .iter()
            .map(|(key, m)| {
                Ok((
                    key.clone(),
                    Metric::from_json(m).map_err(|e| format!("{key}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Report {
            metrics,
            threads: value["threads"].as_u64().unwrap_or(0),
            simd: value["simd"].as_str().unwrap_or("?").to_string(),
            ceiling_gflops: value["fma_peak_gflops"].as_f64().unwrap_or(f64::NAN),
            ceiling_1t_gflops: value["fma_peak_1t_gflops"].as_f64().unwrap_or(f64::NAN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceiling(gflops: f64) -> Ceiling {
        Ceiling::new(gflops, &[gflops])
    }

    #[test]
    fn quartiles_interpolate_and_the_median_is_the_middle_sample() {
        let s = Spread::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.q1, s.median, s.q3, s.count), (2.0, 3.0, 4.0, 5));
        let s = Spread::of(vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.q1, s.median, s.q3), (1.75, 3.0, 3.25));
        let once = Spread::once(7.0);
        assert_eq!((once.q1, once.median, once.q3), (7.0, 7.0, 7.0));
    }

    #[test]
    fn a_rate_from_times_swaps_the_quartiles() {
        // Quartiles 1.5 and 3 seconds: 40 and 20 a second, the faster one the third.
        let times = Spread::of(vec![1.0, 2.0, 4.0]);
        let rate = times.map(|t| 60.0 / t);
        assert_eq!((rate.q1, rate.median, rate.q3), (20.0, 30.0, 40.0));
    }

    #[test]
    fn gflops_and_shares_of_times_and_rates() {
        // 2 GFLOP in 10 ms on a 400 GFLOP/s ceiling: 200 GFLOP/s, half of it.
        let time = Metric::computed(
            Spread::of(vec![8.0, 10.0, 20.0]),
            Unit::Millis,
            2.0,
            ceiling(400.0),
        );
        assert_eq!(time.gflops(), Some(200.0));
        assert_eq!(time.ceiling_share(), Some(0.5));
        let shares = time.share_spread().unwrap();
        assert!(
            shares.q1 < shares.median && shares.median < shares.q3,
            "{shares:?}"
        );
        // 0.1 GFLOP an image at 1000 images/s: 100 GFLOP/s.
        let rate = Metric::computed(Spread::once(1000.0), Unit::PerSecond, 0.1, ceiling(200.0));
        assert_eq!(rate.gflops(), Some(100.0));
        assert_eq!(rate.ceiling_share(), Some(0.5));
        assert_eq!(
            Metric::plain(Spread::once(1.0), Unit::Seconds).gflops(),
            None
        );
    }

    #[test]
    fn metrics_read_back_what_they_wrote() {
        let mut report = Report::default();
        report.insert(
            "t",
            Metric::computed(
                Spread::of(vec![1.0, 2.0, 3.0]),
                Unit::Micros,
                1e-3,
                Ceiling::new(90.0, &[85.0, 94.0]),
            ),
        );
        report.insert("m", Metric::plain(Spread::once(80.0), Unit::Megabytes));
        let json = json!({
            "metrics": report.metrics_json(),
            "threads": 2,
            "simd": "avx512",
            "fma_peak_gflops": 180.0,
            "fma_peak_1t_gflops": 90.0,
        });
        let back = Report::from_json(&json).unwrap();
        assert_eq!(back.metrics, report.metrics);
        assert_eq!(back.metrics["t"].work.unwrap().ceiling_range, 0.1);
        assert_eq!((back.threads, back.simd.as_str()), (2, "avx512"));
        assert_eq!((back.ceiling_gflops, back.ceiling_1t_gflops), (180.0, 90.0));
    }
}
