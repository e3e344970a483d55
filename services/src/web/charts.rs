//! Small charts drawn as inline SVG on the server: no chart library, nothing to build, they
//! print and they work without JavaScript. Each one carries a text summary for screen readers.

use std::fmt::Write;

use super::page::esc;

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 28.0;
const PAD_T: f64 = 12.0;

fn frame(title: &str, max: f64, inner: &str) -> String {
    let mut s = format!(r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}"><title>{}</title>"#, esc(title), esc(title));
    let base = H - PAD_B;
    let _ = write!(
        s,
        r#"<line x1="{PAD_L}" y1="{base}" x2="{W}" y2="{base}" class="axis"/><line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{base}" class="axis"/>"#
    );
    let _ = write!(s, r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#, PAD_L - 4.0, PAD_T + 8.0, max.round());
    let _ = write!(s, r#"<text x="{}" y="{base}" class="tick" text-anchor="end">0</text>"#, PAD_L - 4.0);
    s.push_str(inner);
    s.push_str("</svg>");
    s
}

/// A line of values over time (labels under a few points).
pub fn line(title: &str, points: &[(String, f64)]) -> String {
    if points.is_empty() {
        return format!(r#"<p class="muted">{} : aucune donnée.</p>"#, esc(title));
    }
    let max = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let step = (W - PAD_L - 10.0) / (points.len().max(2) - 1) as f64;
    let y = |v: f64| H - PAD_B - v / max * (H - PAD_B - PAD_T);
    let mut inner = String::from(r#"<polyline class="series" fill="none" points=""#);
    for (i, (_, v)) in points.iter().enumerate() {
        let _ = write!(inner, "{:.1},{:.1} ", PAD_L + i as f64 * step, y(*v));
    }
    inner.push_str(r#""/>"#);
    let every = (points.len() / 6).max(1);
    for (i, (label, _)) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(inner, r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#, PAD_L + i as f64 * step, H - 8.0, esc(label));
    }
    frame(title, max, &inner)
}

/// Bars, one per labelled bucket; a bucket flagged `alert` is drawn in the alert colour.
pub fn bars(title: &str, buckets: &[(String, f64, bool)]) -> String {
    if buckets.is_empty() {
        return format!(r#"<p class="muted">{} : aucune donnée.</p>"#, esc(title));
    }
    let max = buckets.iter().map(|b| b.1).fold(1.0, f64::max);
    let slot = (W - PAD_L - 10.0) / buckets.len() as f64;
    let mut inner = String::new();
    for (i, (label, v, alert)) in buckets.iter().enumerate() {
        let h = v / max * (H - PAD_B - PAD_T);
        let x = PAD_L + i as f64 * slot + slot * 0.15;
        let class = if *alert { "bar alert" } else { "bar" };
        let _ = write!(
            inner,
            r#"<rect class="{class}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{}: {v}</title></rect><text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            H - PAD_B - h,
            slot * 0.7,
            esc(label),
            x + slot * 0.35,
            H - 8.0,
            esc(label)
        );
        if *v > 0.0 {
            let _ = write!(inner, r#"<text x="{:.1}" y="{:.1}" class="value" text-anchor="middle">{v}</text>"#, x + slot * 0.35, H - PAD_B - h - 3.0);
        }
    }
    frame(title, max, &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_mark_alerts() {
        let svg = bars("Échéances", &[("retard".into(), 2.0, true), ("< 4 h".into(), 4.0, false)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert_eq!(svg.matches("bar alert").count(), 1);
        // The tallest bar spans the plot's height.
        assert!(svg.contains(&format!("height=\"{:.1}\"", H - PAD_B - PAD_T)), "{svg}");
    }

    #[test]
    fn labels_are_escaped_and_empty_series_say_so() {
        assert!(line("x", &[("<b>".into(), 1.0), ("y".into(), 2.0)]).contains("&lt;b&gt;"));
        assert!(line("Stock", &[]).contains("aucune donnée"));
    }
}
