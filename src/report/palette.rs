//! One colour per method across every figure of a report, so that `online3`
//! is the same blue in Fig. 1, Fig. 4 and Fig. 10 and a reader never has to
//! re-learn a legend.
//!
//! The colours are the Okabe–Ito palette (Okabe & Ito, "Color Universal
//! Design", 2008), chosen to stay distinguishable under the common forms of
//! colour-vision deficiency and in greyscale print. Its yellow comes late:
//! it is the weakest on a white background. A report with more methods
//! than colours reuses them in order (their legends still name them).

use plotters::style::RGBColor;

/// Blue, vermillion, bluish green, orange, reddish purple, sky blue, yellow, black.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xF0, 0xE4, 0x42),
    RGBColor(0x00, 0x00, 0x00),
];

/// Series names in the order a report first shows them; a name's colour is
/// its place in that order.
#[derive(Debug, Clone, Default)]
pub struct Palette {
    order: Vec<String>,
}

impl Palette {
    /// The palette of a report whose figures show these series, in order.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Palette {
        let mut order: Vec<String> = vec![];
        for name in names {
            if !order.iter().any(|n| n == name) {
                order.push(name.to_string());
            }
        }
        Palette { order }
    }

    /// A series' colour; a series the palette was not built with gets one
    /// after all the known ones (a figure drawn on its own).
    pub fn colour(&self, series: &str) -> RGBColor {
        let i = self.order.iter().position(|n| n == series).unwrap_or_else(|| {
            self.order.len() + series.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % 8
        });
        OKABE_ITO[i % OKABE_ITO.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_keeps_its_colour_across_figures() {
        // Fig. 1 shows online3 and offline; Fig. 4 adds tandem after them.
        let p = Palette::of(["online3", "offline", "online3", "offline", "tandem"]);
        assert_eq!(p.colour("online3"), OKABE_ITO[0]);
        assert_eq!(p.colour("offline"), OKABE_ITO[1]);
        assert_eq!(p.colour("tandem"), OKABE_ITO[2]);
        // The ninth method reuses the first colour.
        let many = Palette::of((0..9).map(|i| ["a", "b", "c", "d", "e", "f", "g", "h", "i"][i]));
        assert_eq!(many.colour("i"), OKABE_ITO[0]);
    }
}
