//! The plots, drawn by hand as SVG (no plotting library): horizontal bars
//! with the individual rounds as dots, and a cumulative distribution.

use std::fmt::Write as _;

use super::thousands;

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Horizontal bars with the individual rounds as dots.
pub(super) fn bar_chart(title: &str, unit: &str, bars: &[(String, f64, Vec<f64>, &str)]) -> String {
    let (w, left, right, top, bh, gap) = (800.0, 280.0, 110.0, 44.0, 34.0, 16.0);
    let h = top + bars.len() as f64 * (bh + gap) + 40.0;
    let max = bars
        .iter()
        .flat_map(|(_, v, pts, _)| std::iter::once(*v).chain(pts.iter().copied()))
        .fold(0.0, f64::max)
        .max(1e-9);
    let scale = (w - left - right) / max;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="12" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (label, v, pts, color)) in bars.iter().enumerate() {
        let y = top + i as f64 * (bh + gap);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + bh / 2.0 + 4.0,
            esc(label)
        );
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{y}" width="{:.1}" height="{bh}" fill="{color}"/>"#,
            v * scale
        );
        for p in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="black" fill-opacity="0.6"/>"#,
                left + p * scale,
                y + bh / 2.0
            );
        }
        let end = pts.iter().copied().fold(*v, f64::max);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}">{} {}</text>"#,
            left + end * scale + 8.0,
            y + bh / 2.0 + 4.0,
            thousands(*v),
            esc(unit)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="{}" fill="#555" font-size="11">bars: median; dots: individual rounds</text>"##,
        h - 14.0
    );
    s.push_str("</svg>\n");
    s
}

/// The cumulative distribution of `values` (ms), with marker lines.
pub(super) fn cdf_chart(title: &str, values: &[f64], markers: &[(String, f64)]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 380.0, 60.0, 30.0, 44.0, 50.0);
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let max = v.last().copied().unwrap_or(1.0).max(1.0);
    // A round axis end.
    let step = [100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0]
        .into_iter()
        .find(|s| max / s <= 8.0)
        .unwrap_or(10_000.0);
    let xmax = (max / step).ceil() * step;
    let pw = w - left - right;
    let ph = h - top - bottom;
    let x = |ms: f64| left + ms / xmax * pw;
    let y = |f: f64| top + (1.0 - f) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="12" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    // Grid and axes.
    let mut t = 0.0;
    while t <= xmax + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#ddd"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(t),
            top,
            top + ph,
            top + ph + 16.0,
            thousands(t)
        );
        t += step;
    }
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}%</text>"##,
            y(f),
            left + pw,
            left - 6.0,
            y(f) + 4.0,
            k * 25
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">push sent → webhook received (ms)</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    // The step curve.
    let n = v.len().max(1) as f64;
    let mut d = format!("M{:.1},{:.1}", x(0.0), y(0.0));
    for (i, ms) in v.iter().enumerate() {
        let _ = write!(
            d,
            " L{:.1},{:.1} L{:.1},{:.1}",
            x(*ms),
            y(i as f64 / n),
            x(*ms),
            y((i + 1) as f64 / n)
        );
    }
    let _ = writeln!(
        s,
        r##"<path d="{d}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##
    );
    for (k, (label, at)) in markers.iter().enumerate() {
        // Labels left of their line near the right edge, staggered.
        let (tx, anchor) = if x(*at) > left + 0.7 * pw {
            (x(*at) - 4.0, "end")
        } else {
            (x(*at) + 4.0, "start")
        };
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#d62728" stroke-dasharray="4 3"/><text x="{3:.1}" y="{4}" fill="#d62728" text-anchor="{6}">{5}</text>"##,
            x(*at),
            top,
            top + ph,
            tx,
            top + 14.0 + 16.0 * k as f64,
            esc(label),
            anchor
        );
    }
    s.push_str("</svg>\n");
    s
}
