//! One self-contained HTML page: the run's numbers, figures embedded as `data:` URIs, the
//! confusion matrix as a table and the most confidently wrong digits.
//!
//! The page references nothing outside itself (a Content-Security-Policy forbids it), so it can
//! be mailed, archived or opened offline. A small inline script records on `<body>` how many
//! images decoded (`data-images-loaded="N/M"`) once the page has loaded, for the headless
//! browser check in `tests/report_browser_check.sh`.

use std::fmt::Write as _;
use std::path::Path;

use super::RenderError;
use crate::analysis::calibration::ConfidentMistake;

/// Standard base64 (RFC 4648, with padding). Thirty lines here instead of a dependency: the
/// report is the only user and only encodes.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, &s) in sextets.iter().enumerate() {
            // chunk of 1 byte -> 2 characters, 2 bytes -> 3, then '=' padding.
            if i <= chunk.len() {
                out.push(ALPHABET[s as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Width and height from a PNG's IHDR chunk, so `<img>` can reserve its space.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

#[derive(Debug, Clone)]
struct Section {
    heading: Option<String>,
    body: String,
}

/// Builder of the HTML report. Content goes into the current section, in call order.
///
/// ```
/// # use softnet::render::report::HtmlReport;
/// let mut r = HtmlReport::new("softnet report");
/// r.numbers(&[("test accuracy", "92.14%")])
///     .section("Confusion matrix")
///     .confusion_matrix(&[5, 1, 0, 4], 2)
///     .unwrap();
/// let html = r.to_html();
/// assert!(html.contains("92.14%"));
/// ```
#[derive(Debug, Clone)]
pub struct HtmlReport {
    title: String,
    subtitle: Option<String>,
    sections: Vec<Section>,
}

impl HtmlReport {
    /// An empty report with a page title.
    pub fn new(title: impl Into<String>) -> Self {
        HtmlReport {
            title: title.into(),
            subtitle: None,
            sections: vec![Section {
                heading: None,
                body: String::new(),
            }],
        }
    }

    /// A line under the title (e.g. the model file and the date).
    pub fn subtitle(&mut self, text: impl Into<String>) -> &mut Self {
        self.subtitle = Some(text.into());
        self
    }

    /// Starts a new section with a heading.
    pub fn section(&mut self, heading: impl Into<String>) -> &mut Self {
        self.sections.push(Section {
            heading: Some(heading.into()),
            body: String::new(),
        });
        self
    }

    fn body(&mut self) -> &mut String {
        // `new` creates the first section and nothing removes sections.
        let last = self.sections.len() - 1;
        &mut self.sections[last].body
    }

    /// A paragraph of text.
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        let html = format!("<p>{}</p>\n", escape_html(text));
        self.body().push_str(&html);
        self
    }

    /// A two-column table of run numbers (name, value).
    pub fn numbers<K: AsRef<str>, V: AsRef<str>>(&mut self, rows: &[(K, V)]) -> &mut Self {
        let mut html = String::from("<table class=\"kv\">\n");
        for (k, v) in rows {
            let _ = writeln!(
                html,
                "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                escape_html(k.as_ref()),
                escape_html(v.as_ref())
            );
        }
        html.push_str("</table>\n");
        self.body().push_str(&html);
        self
    }

    /// A figure: PNG bytes embedded as a data URI, with a caption.
    pub fn figure(&mut self, png: &[u8], caption: &str) -> &mut Self {
        let size = png_size(png)
            .map(|(w, h)| format!(" width=\"{w}\" height=\"{h}\""))
            .unwrap_or_default();
        let cap = escape_html(caption);
        let html = format!(
            "<figure><img src=\"data:image/png;base64,{}\" alt=\"{cap}\"{size}>\
             <figcaption>{cap}</figcaption></figure>\n",
            base64_encode(png)
        );
        self.body().push_str(&html);
        self
    }

    /// The confusion matrix (`counts` is `[classes, classes]`, row-major, rows = true class,
    /// columns = predicted class) as a table with the diagonal highlighted, off-diagonal cells
    /// shaded by their share of the row, and per-class totals and recall.
    pub fn confusion_matrix(
        &mut self,
        counts: &[u64],
        classes: usize,
    ) -> Result<&mut Self, RenderError> {
        if classes == 0 || counts.len() != classes * classes {
            return Err(RenderError::Input(format!(
                "confusion matrix: {} counts for {classes} classes",
                counts.len()
            )));
        }
        let mut html = String::from(
            "<table class=\"confusion\">\n<thead><tr><th class=\"corner\">true \u{2193} / predicted \u{2192}</th>",
        );
        for c in 0..classes {
            let _ = write!(html, "<th scope=\"col\">{c}</th>");
        }
        html.push_str(
            "<th scope=\"col\">total</th><th scope=\"col\">recall</th></tr></thead>\n<tbody>\n",
        );
        for (t, row) in counts.chunks_exact(classes).enumerate() {
            let total: u64 = row.iter().sum();
            let _ = write!(html, "<tr><th scope=\"row\">{t}</th>");
            for (p, &v) in row.iter().enumerate() {
                if p == t {
                    let _ = write!(html, "<td class=\"diag\">{v}</td>");
                } else if v == 0 {
                    html.push_str("<td class=\"zero\">0</td>");
                } else {
                    // Shade errors by their share of the row; sqrt so small shares still show.
                    let share = v as f64 / total.max(1) as f64;
                    let alpha = 0.08 + 0.6 * share.sqrt();
                    let _ = write!(
                        html,
                        "<td class=\"off\" style=\"background:rgba(200,60,50,{alpha:.2})\">{v}</td>"
                    );
                }
            }
            let recall = if total > 0 {
                format!("{:.1}%", 100.0 * row[t] as f64 / total as f64)
            } else {
                "\u{2013}".to_string()
            };
            let _ = writeln!(
                html,
                "<td class=\"total\">{total}</td><td class=\"total\">{recall}</td></tr>"
            );
        }
        html.push_str("</tbody>\n</table>\n");
        self.body().push_str(&html);
        Ok(self)
    }

    /// A table of misclassified digits (rank, test index, true label, prediction, confidence).
    pub fn mistakes_table(&mut self, rows: &[ConfidentMistake]) -> &mut Self {
        let mut html = String::from(
            "<table class=\"mistakes\">\n<thead><tr><th>#</th><th>test index</th><th>true label</th>\
             <th>predicted</th><th>confidence</th></tr></thead>\n<tbody>\n",
        );
        for (rank, m) in rows.iter().enumerate() {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"wrong\">{}</td><td>{:.4}</td></tr>",
                rank + 1,
                m.index,
                m.label,
                m.predicted,
                m.confidence
            );
        }
        html.push_str("</tbody>\n</table>\n");
        self.body().push_str(&html);
        self
    }

    /// A "most confidently wrong" section: a heading, the digits' picture and their table.
    pub fn confident_mistakes(&mut self, png: &[u8], rows: &[ConfidentMistake]) -> &mut Self {
        self.section("Most confidently wrong")
            .paragraph("Test digits the model got wrong with the highest confidence.")
            .figure(
                png,
                "Most confidently wrong test digits: true label \u{2192} prediction (confidence)",
            )
            .mistakes_table(rows)
    }

    /// The whole page.
    pub fn to_html(&self) -> String {
        let mut html = String::with_capacity(1 << 16);
        let title = escape_html(&self.title);
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; \
             style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{CSS}</style>\n</head>\n\
             <body data-images-loaded=\"pending\">\n<main>\n<header><h1>{title}</h1>"
        );
        if let Some(sub) = &self.subtitle {
            let _ = write!(html, "<p class=\"subtitle\">{}</p>", escape_html(sub));
        }
        html.push_str("</header>\n");
        for s in &self.sections {
            if s.heading.is_none() && s.body.is_empty() {
                continue;
            }
            html.push_str("<section>\n");
            if let Some(h) = &s.heading {
                let _ = writeln!(html, "<h2>{}</h2>", escape_html(h));
            }
            html.push_str(&s.body);
            html.push_str("</section>\n");
        }
        let _ = write!(
            html,
            "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
        );
        html
    }

    /// Writes the page to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), RenderError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_html()).map_err(|source| RenderError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

const CSS: &str = "
:root { color-scheme: light; }
body { margin: 0; background: #f4f5f7; color: #1e1e1e;
  font: 16px/1.5 -apple-system, 'Segoe UI', 'DejaVu Sans', Helvetica, Arial, sans-serif; }
main { max-width: 1540px; margin: 0 auto; padding: 24px 32px 48px; }
header h1 { margin: 0 0 4px; font-size: 28px; }
.subtitle { margin: 0; color: #555; }
section { background: #fff; border: 1px solid #dde0e4; border-radius: 8px; padding: 16px 24px;
  margin: 20px 0; }
h2 { margin: 0 0 12px; font-size: 20px; border-bottom: 1px solid #eee; padding-bottom: 6px; }
figure { margin: 12px 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { color: #555; font-size: 14px; margin-top: 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 8px 0; }
th, td { padding: 4px 10px; }
table.kv th { text-align: left; font-weight: 600; color: #333; padding-right: 24px; }
table.kv td { text-align: right; }
table.kv tr:nth-child(even) { background: #f6f7f9; }
table.confusion td, table.confusion th { border: 1px solid #e0e0e0; text-align: right;
  min-width: 44px; }
table.confusion thead th, table.confusion tbody th { background: #f0f2f5; text-align: center; }
table.confusion th.corner { font-weight: 500; font-size: 13px; color: #555; }
table.confusion td.diag { background: #cfe8d4; font-weight: 700; }
table.confusion td.zero { color: #bbb; }
table.confusion td.total { background: #fafafa; color: #444; }
table.mistakes th { background: #f0f2f5; text-align: right; }
table.mistakes td { text-align: right; border-bottom: 1px solid #eee; }
table.mistakes td.wrong { color: #c0302a; font-weight: 700; }
";

/// Counts decoded images once everything has loaded, for headless checks.
const SCRIPT: &str = "
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RgbImage;

    /// Standard base64 decoding, the oracle for the encoder.
    fn decode64(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        };
        let mut out = Vec::new();
        for chunk in s.as_bytes().chunks(4) {
            let pad = chunk.iter().filter(|&&c| c == b'=').count();
            let n = chunk
                .iter()
                .map(|&c| if c == b'=' { 0 } else { u32::from(val(c)) })
                .fold(0u32, |acc, v| (acc << 6) | v);
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        out
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode64(&base64_encode(&all)), all);
        assert!(base64_encode(&[0xfb, 0xff]).starts_with("+/"));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn report_embeds_every_figure_and_the_numbers() {
        let pngs: Vec<Vec<u8>> = (1..=3)
            .map(|i| {
                RgbImage::new(i * 10, 7, [i as u8 * 50, 0, 0])
                    .encode_png()
                    .unwrap()
            })
            .collect();
        let mut counts = vec![0u64; 100];
        for c in 0..10 {
            counts[c * 10 + c] = 900 + c as u64;
        }
        counts[4 * 10 + 9] = 37;
        let mistakes = [ConfidentMistake {
            index: 1234,
            label: 4,
            predicted: 9,
            confidence: 0.9876,
        }];
        let mut r = HtmlReport::new("Run <1>");
        r.subtitle("model m.safetensors")
            .numbers(&[("test accuracy", "92.14%"), ("ECE", "0.0123")])
            .section("Pictures")
            .figure(&pngs[0], "digits & labels")
            .figure(&pngs[1], "weights");
        r.section("Confusion matrix")
            .confusion_matrix(&counts, 10)
            .unwrap();
        r.confident_mistakes(&pngs[2], &mistakes);
        let html = r.to_html();

        assert!(html.contains("<title>Run &lt;1&gt;</title>"));
        assert!(html.contains("<th scope=\"row\">test accuracy</th><td>92.14%</td>"));
        assert!(html.contains("digits &amp; labels"));
        // Three images, each decoding back to its PNG, with its size.
        let srcs: Vec<&str> = html
            .split("<img src=\"data:image/png;base64,")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(html.matches("<img ").count(), 3);
        assert_eq!(srcs.len(), 3);
        for (src, png) in srcs.iter().zip(&pngs) {
            assert_eq!(&decode64(src), png);
        }
        assert!(html.contains("width=\"20\" height=\"7\""));
        // Confusion values, diagonal highlighted, recall.
        assert!(html.contains("<td class=\"diag\">904</td>"));
        assert!(html.contains(">37</td>"));
        assert!(html.contains("<td class=\"total\">941</td><td class=\"total\">96.1%</td>"));
        // Mistakes table.
        assert!(html.contains("<td>1234</td><td>4</td><td class=\"wrong\">9</td><td>0.9876</td>"));
        // Nothing from the network.
        for needle in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(!html.contains(needle), "{needle}");
        }
        assert!(html.contains("data-images-loaded"));
    }

    #[test]
    fn confusion_shape_is_checked_and_saving_names_the_path() {
        let mut r = HtmlReport::new("x");
        assert!(r.confusion_matrix(&[1, 2, 3], 2).is_err());
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("no/such/report.html");
        assert!(r
            .save(&bad)
            .unwrap_err()
            .to_string()
            .contains("no/such/report.html"));
        let good = dir.path().join("report.html");
        r.save(&good).unwrap();
        assert_eq!(std::fs::read_to_string(&good).unwrap(), r.to_html());
    }
}
