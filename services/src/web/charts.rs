//! Small charts drawn as inline SVG on the server: no chart library, nothing to build, they
//! print and they work without JavaScript. Each one carries a text summary for screen readers.

use std::fmt::Write;

use maud::{Markup, html};

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 28.0;
const PAD_T: f64 = 12.0;

/// A number as the chart's coordinates write it.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

fn frame(title: &str, max: f64, inner: Markup) -> Markup {
    let base = H - PAD_B;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title) {
            title { (title) }
            line.axis x1=(PAD_L) y1=(base) x2=(W) y2=(base) {}
            line.axis x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(base) {}
            text.tick x=(PAD_L - 4.0) y=(PAD_T + 8.0) text-anchor="end" { (max.round()) }
            text.tick x=(PAD_L - 4.0) y=(base) text-anchor="end" { "0" }
            (inner)
        }
    }
}

fn no_data(title: &str) -> Markup {
    html! { p.muted { (title) " : aucune donnée." } }
}

/// A line of values over time (labels under a few points).
pub fn line(title: &str, points: &[(String, f64)]) -> Markup {
    if points.is_empty() {
        return no_data(title);
    }
    let max = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let step = (W - PAD_L - 10.0) / (points.len().max(2) - 1) as f64;
    let y = |v: f64| H - PAD_B - v / max * (H - PAD_B - PAD_T);
    let mut path = String::new();
    for (i, (_, v)) in points.iter().enumerate() {
        let _ = write!(path, "{:.1},{:.1} ", PAD_L + i as f64 * step, y(*v));
    }
    let every = (points.len() / 6).max(1);
    let inner = html! {
        polyline.series fill="none" points=(path) {}
        @for (i, (label, _)) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
            text.tick x=(at(PAD_L + i as f64 * step)) y=(H - 8.0) text-anchor="middle" { (label) }
        }
    };
    frame(title, max, inner)
}

/// Bars, one per labelled bucket; a bucket flagged `alert` is drawn in the alert colour.
pub fn bars(title: &str, buckets: &[(String, f64, bool)]) -> Markup {
    if buckets.is_empty() {
        return no_data(title);
    }
    let max = buckets.iter().map(|b| b.1).fold(1.0, f64::max);
    let slot = (W - PAD_L - 10.0) / buckets.len() as f64;
    let inner = html! {
        @for (i, (label, v, alert)) in buckets.iter().enumerate() {
            @let h = v / max * (H - PAD_B - PAD_T);
            @let x = PAD_L + i as f64 * slot + slot * 0.15;
            rect.bar.alert[*alert] x=(at(x)) y=(at(H - PAD_B - h)) width=(at(slot * 0.7)) height=(at(h)) { title { (label) ": " (v) } }
            text.tick x=(at(x + slot * 0.35)) y=(H - 8.0) text-anchor="middle" { (label) }
            @if *v > 0.0 {
                text.value x=(at(x + slot * 0.35)) y=(at(H - PAD_B - h - 3.0)) text-anchor="middle" { (v) }
            }
        }
    };
    frame(title, max, inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_mark_alerts() {
        let svg = bars("Échéances", &[("retard".into(), 2.0, true), ("< 4 h".into(), 4.0, false)]).into_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert_eq!(svg.matches("bar alert").count(), 1);
        // The tallest bar spans the plot's height.
        assert!(svg.contains(&format!("height=\"{:.1}\"", H - PAD_B - PAD_T)), "{svg}");
    }

    #[test]
    fn labels_are_escaped_and_empty_series_say_so() {
        assert!(line("x", &[("<b>".into(), 1.0), ("y".into(), 2.0)]).into_string().contains("&lt;b&gt;"));
        assert!(line("Stock", &[]).into_string().contains("aucune donnée"));
    }
}
