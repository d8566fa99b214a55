//! Server-side SVG charts: sparklines, stacked daily bars, rate lines with
//! annotations, waterfall and budget bars.
//!
//! Invariants:
//! - [`Svg`] can only be built here, and every piece of text that goes into it
//!   (series names, titles, labels: user data) passes through [`esc`]. That is
//!   why templates may print an `Svg` unescaped (`HtmlSafe`), and nothing else.
//! - Geometry uses `f64`; money in titles arrives pre-formatted from exact
//!   decimals, so a chart never rounds a number a person reads.
//! - Colours come from CSS classes (`s0`…`s7`, `other`), not inline styles, so
//!   the page runs under a strict Content-Security-Policy.

use std::fmt::{self, Write};

/// Markup produced by this module only. Safe to print unescaped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Svg(String);

impl Svg {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Svg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for Svg {}

impl serde::Serialize for Svg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Escapes text for SVG/HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Number of distinct series colours; later series share `other`.
pub const PALETTE: usize = 8;

/// CSS class of the i-th series.
pub fn series_class(i: usize) -> String {
    if i < PALETTE {
        format!("s{i}")
    } else {
        "other".to_string()
    }
}

/// A small trend line; `None` points are gaps. The last point is marked.
pub fn sparkline(values: &[Option<f64>]) -> Svg {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let max = values.iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
    let n = values.len().max(2) - 1;
    let mut out = format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-hidden="true">"#
    );
    let mut path = String::new();
    let mut last = None;
    let mut pen_up = true;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else {
            pen_up = true;
            continue;
        };
        let x = i as f64 * W / n as f64;
        let y = if max > 0.0 {
            H - 2.0 - (v / max) * (H - 4.0)
        } else {
            H - 2.0
        };
        let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" });
        pen_up = false;
        last = Some((x, y));
    }
    if !path.trim().is_empty() {
        let _ = write!(out, r#"<path class="line" d="{}"/>"#, path.trim());
    }
    if let Some((x, y)) = last {
        let _ = write!(
            out,
            r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="2"/>"#
        );
    }
    out.push_str("</svg>");
    Svg(out)
}

/// One stacked segment: a value for geometry and the exact text for its tooltip.
#[derive(Debug, Clone)]
pub struct Segment {
    pub value: f64,
    pub title: String,
}

/// A stacked bar chart: one column per label, one segment per series.
/// `columns[i][s]` is series `s` on column `i`; `series` names the colours.
pub fn stacked_bars(
    labels: &[String],
    series: &[String],
    columns: &[Vec<Segment>],
    axis_max_label: &str,
) -> Svg {
    const W: f64 = 960.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 8.0;
    const BOTTOM: f64 = 18.0;
    let totals: Vec<f64> = columns
        .iter()
        .map(|c| c.iter().map(|s| s.value.max(0.0)).sum())
        .collect();
    let max = totals.iter().fold(0.0_f64, |a, b| a.max(*b));
    let n = labels.len().max(1);
    let slot = (W - LEFT) / n as f64;
    let bar = (slot * 0.72).max(1.0);
    let plot_h = H - BOTTOM - 14.0;
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="stacked daily chart">"#
    );
    // gridlines at 0, 50%, 100% of max
    for f in [0.0, 0.5, 1.0] {
        let y = 14.0 + plot_h * (1.0 - f);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{W}" y1="{y:.1}" y2="{y:.1}"/>"#
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="{W}" y="10" text-anchor="end">max {}</text>"#,
        esc(axis_max_label)
    );
    for (i, col) in columns.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let mut y = 14.0 + plot_h;
        for (s, seg) in col.iter().enumerate() {
            if seg.value <= 0.0 || max <= 0.0 {
                continue;
            }
            let h = seg.value / max * plot_h;
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="{}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.2}"><title>{}</title></rect>"#,
                series_class(s.min(series.len())),
                esc(&seg.title)
            );
        }
    }
    let every = n.div_ceil(16).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every == 0 {
            let x = LEFT + i as f64 * slot + slot / 2.0;
            let _ = write!(
                out,
                r#"<text class="axis" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - 4.0,
                esc(l)
            );
        }
    }
    out.push_str("</svg>");
    Svg(out)
}

/// A marker on a rate chart (e.g. "response model changed to X").
#[derive(Debug, Clone)]
pub struct Annotation {
    pub index: usize,
    pub label: String,
}

/// Failure rate over time: bars for volume (light), a line for the rate,
/// dashed verticals for annotations. `rates` are fractions 0..=1.
pub fn rate_chart(
    labels: &[String],
    rates: &[Option<f64>],
    volumes: &[u64],
    titles: &[String],
    annotations: &[Annotation],
) -> Svg {
    const W: f64 = 640.0;
    const H: f64 = 140.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 18.0;
    let plot_h = H - TOP - BOTTOM;
    let n = labels.len().max(1);
    let slot = W / n as f64;
    let max_rate = rates.iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
    let top_rate = nice_ceiling(max_rate);
    let max_vol = volumes.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = format!(
        r#"<svg class="chart rate" viewBox="0 0 {W} {H}" role="img" aria-label="failure rate over time">"#
    );
    for f in [0.0, 0.5, 1.0] {
        let y = TOP + plot_h * (1.0 - f);
        let _ = write!(
            out,
            r#"<line class="grid" x1="0" x2="{W}" y1="{y:.1}" y2="{y:.1}"/>"#
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="2" y="11">{:.0}% fail</text>"#,
        top_rate * 100.0
    );
    for (i, v) in volumes.iter().enumerate() {
        let h = *v as f64 / max_vol * plot_h * 0.35;
        let x = i as f64 * slot + slot * 0.15;
        let title = titles.get(i).map(|t| esc(t)).unwrap_or_default();
        let _ = write!(
            out,
            r#"<rect class="vol" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{title}</title></rect>"#,
            TOP + plot_h - h,
            slot * 0.7
        );
    }
    let mut d = String::new();
    let mut pen_up = true;
    for (i, r) in rates.iter().enumerate() {
        match r {
            Some(r) => {
                let x = i as f64 * slot + slot / 2.0;
                let y = TOP + plot_h * (1.0 - r / top_rate);
                let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" });
                pen_up = false;
                let title = titles.get(i).map(|t| esc(t)).unwrap_or_default();
                let _ = write!(
                    out,
                    r#"<circle class="pt" cx="{x:.1}" cy="{y:.1}" r="2.2"><title>{title}</title></circle>"#
                );
            }
            None => pen_up = true,
        }
    }
    if !d.is_empty() {
        let _ = write!(out, r#"<path class="line" d="{}"/>"#, d.trim());
    }
    for a in annotations {
        let x = a.index as f64 * slot;
        let _ = write!(
            out,
            r#"<line class="annot" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}"/><text class="annot" x="{:.1}" y="{:.1}">{}</text>"#,
            TOP + plot_h,
            x + 3.0,
            TOP + 10.0,
            esc(&a.label)
        );
    }
    let every = n.div_ceil(12).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every == 0 {
            let x = i as f64 * slot + slot / 2.0;
            let _ = write!(
                out,
                r#"<text class="axis" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - 4.0,
                esc(l)
            );
        }
    }
    out.push_str("</svg>");
    Svg(out)
}

/// 1, 2, 5 × 10^k at or above `v` (for rates 0..1, at least 1%).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.01 {
        return 0.01;
    }
    for step in [0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0] {
        if v <= step {
            return step;
        }
    }
    1.0
}

/// A waterfall bar: offset and width as fractions of the trace duration.
pub fn waterfall(offset: f64, width: f64, class: &str) -> Svg {
    let x = (offset.clamp(0.0, 1.0) * 1000.0).min(999.0);
    let w = (width.clamp(0.0, 1.0) * 1000.0)
        .max(2.0)
        .min(1000.0 - x)
        .max(1.0);
    Svg(format!(
        r#"<svg class="wf" viewBox="0 0 1000 10" preserveAspectRatio="none" aria-hidden="true"><rect class="{}" x="{x:.1}" y="1" width="{w:.1}" height="8"/></svg>"#,
        esc(class)
    ))
}

/// A horizontal progress bar for budgets; `frac` may exceed 1 (over budget).
pub fn budget_bar(frac: f64) -> Svg {
    let over = frac > 1.0;
    let w = (frac.clamp(0.0, 1.0) * 200.0).max(0.5);
    Svg(format!(
        r#"<svg class="budget" viewBox="0 0 200 8" preserveAspectRatio="none" aria-hidden="true"><rect class="track" x="0" y="0" width="200" height="8"/><rect class="{}" x="0" y="0" width="{w:.1}" height="8"/></svg>"#,
        if over {
            "over"
        } else if frac > 0.8 {
            "near"
        } else {
            "fill"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_in_charts_is_escaped() {
        let svg = stacked_bars(
            &["<b>".to_string()],
            &["<script>alert(1)</script>".to_string()],
            &[vec![Segment {
                value: 1.0,
                title: "<script>alert(1)</script> & co".into(),
            }]],
            "\"x\"",
        );
        assert!(!svg.as_str().contains("<script>"));
        assert!(
            svg.as_str()
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co")
        );
        assert!(svg.as_str().contains("&quot;x&quot;"));
        let r = rate_chart(
            &["a".into()],
            &[Some(0.5)],
            &[3],
            &["<i>".into()],
            &[Annotation {
                index: 0,
                label: "→ <m>".into(),
            }],
        );
        assert!(!r.as_str().contains("<m>") && !r.as_str().contains("<i>"));
    }

    #[test]
    fn sparkline_handles_gaps_and_zeros() {
        let s = sparkline(&[Some(0.0), None, Some(2.0), Some(1.0)]);
        assert!(s.as_str().contains("<path"));
        assert!(s.as_str().contains("circle"));
        let empty = sparkline(&[None, None]);
        assert!(!empty.as_str().contains("<path"));
    }

    #[test]
    fn waterfall_stays_in_bounds() {
        let w = waterfall(0.999, 0.5, "llm");
        assert!(w.as_str().contains("x=\"999.0\""), "{}", w.as_str());
        assert!(w.as_str().contains("width=\"1.0\""));
        assert_eq!(nice_ceiling(0.07), 0.1);
    }
}
