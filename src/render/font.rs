//! The font compiled into softnet for every text in pictures.

use std::sync::Once;

use plotters::style::FontStyle;

/// DejaVu Sans, subset to Latin, Greek and a few signs (see `assets/fonts/README.md`).
static SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
/// DejaVu Sans Bold, the same subset.
static SANS_BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold-subset.ttf");

/// The family name the fonts are registered under; plotters' `FontFamily::SansSerif` and
/// `("sans-serif", size)` resolve to it.
pub const FAMILY: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Registers the embedded fonts with plotters (normal and bold, under [`FAMILY`]). Every drawing
/// function here calls it; call it yourself only to draw with plotters directly.
pub fn register_fonts() {
    REGISTER.call_once(|| {
        // The bytes are compiled in and tested to parse (see the test below), so an error here
        // is a build mistake; plotters then fails each text draw with "font unavailable", which
        // surfaces as a RenderError rather than a panic.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, SANS);
        let _ = plotters::style::register_font(FAMILY, FontStyle::Bold, SANS_BOLD);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_fonts_parse() {
        assert!(plotters::style::register_font("softnet-test", FontStyle::Normal, SANS).is_ok());
        assert!(plotters::style::register_font("softnet-test", FontStyle::Bold, SANS_BOLD).is_ok());
    }
}
