//! Line charts as inline SVG, for pages that open offline. Each series is one `<path>` with
//! class `series` and `data-node` naming its node, so a page can be checked (and styled)
//! per node; fault intervals are shaded bands with their label.

use std::fmt::Write;

/// One colour per node, the same in every chart and every run.
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of node `i`.
pub fn node_color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Line,
    Dashed,
    Dotted,
    /// A dot per point, no line.
    Dots,
}

/// A named line; `None` values break it.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub node: String,
    pub color: &'static str,
    pub style: Style,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded stretch of the x axis (a fault in force).
#[derive(Debug, Clone)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// A chart: x in seconds, y in the unit of `y_label`.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub width: f64,
    pub height: f64,
    pub x_range: (f64, f64),
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 42.0;

/// A step of 1, 2 or 5 × 10^k that cuts `range` into about `ticks` parts.
pub fn nice_step(range: f64, ticks: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    step * mag
}

fn tick_text(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    if v.abs() >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.1}")
    }
}

/// The most points a line keeps: about two per horizontal pixel of a chart.
pub const MAX_LINE_POINTS: usize = 2_000;

/// `points` (in x order) thinned to at most about `max`: consecutive points are grouped
/// into buckets of equal count, and each bucket keeps its lowest and its highest point, so
/// that no dip to zero (an outage) and no peak disappears, and its first gap (`None`), if
/// any; all in x order. Fewer points than `max` are kept as they are.
pub fn downsample(points: &[(f64, Option<f64>)], max: usize) -> Vec<(f64, Option<f64>)> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max / 2);
    let mut out = Vec::with_capacity(max + 2);
    for bucket in points.chunks(per) {
        let values = bucket.iter().filter_map(|(x, y)| y.map(|y| (*x, y)));
        let lo = values.clone().min_by(|a, b| a.1.total_cmp(&b.1));
        let hi = values.max_by(|a, b| a.1.total_cmp(&b.1));
        let mut kept: Vec<(f64, Option<f64>)> = [lo, hi]
            .into_iter()
            .flatten()
            .map(|(x, y)| (x, Some(y)))
            .collect();
        if let Some(gap) = bucket.iter().find(|(_, y)| y.is_none()) {
            kept.push(*gap);
        }
        kept.sort_by(|a, b| a.0.total_cmp(&b.0));
        kept.dedup_by(|a, b| a.0 == b.0);
        out.extend(kept);
    }
    out
}

impl Chart {
    /// The highest y of any point (at least 1, so an empty chart still has an axis).
    fn y_max(&self) -> f64 {
        let max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .fold(0.0f64, f64::max);
        if max <= 0.0 {
            1.0
        } else {
            max
        }
    }

    pub fn render(&self) -> String {
        let (w, h) = (self.width, self.height);
        let (pw, ph) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
        let (x0, x1) = self.x_range;
        let x_span = (x1 - x0).max(1e-9);
        let y_step = nice_step(self.y_max(), 4.0);
        let y_top = (self.y_max() / y_step).ceil() * y_step;
        let sx = |x: f64| LEFT + (x - x0) / x_span * pw;
        let sy = |y: f64| TOP + ph - y / y_top * ph;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{t}">"#,
            id = esc(&self.id),
            t = esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<text class="title" x="{LEFT}" y="18">{}</text>"#,
            esc(&self.title)
        );
        for b in &self.bands {
            let (a, z) = (sx(b.from.max(x0)), sx(b.to.min(x1)));
            if z > a {
                let _ = write!(
                    s,
                    r#"<g class="band"><rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{ph}"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
                    z - a,
                    a + 4.0,
                    TOP + 12.0,
                    esc(&b.label)
                );
            }
        }
        let mut y = 0.0;
        while y <= y_top + y_step / 2.0 {
            let py = sy(y);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT + pw,
                LEFT - 6.0,
                py + 4.0,
                tick_text(y)
            );
            y += y_step;
        }
        let x_step = nice_step(x_span, 10.0);
        let mut x = (x0 / x_step).ceil() * x_step;
        while x <= x1 + 1e-9 {
            let px = sx(x);
            let _ = write!(
                s,
                r#"<line class="axis" x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}"/><text class="tick" x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph,
                TOP + ph + 4.0,
                TOP + ph + 17.0,
                tick_text(x)
            );
            x += x_step;
        }
        let _ = write!(
            s,
            r#"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + pw,
            TOP + ph,
            TOP + ph,
            LEFT + pw / 2.0,
            h - 6.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for series in &self.series {
            s.push_str(&self.render_series(series, &sx, &sy));
        }
        // Legend: one entry per series, right-aligned above the plot.
        let mut lx = w - RIGHT;
        for series in self.series.iter().rev() {
            let text_w = 7.0 * series.label.chars().count() as f64;
            lx -= text_w + 22.0;
            let dash = match series.style {
                Style::Dashed => r#" stroke-dasharray="6 3""#,
                Style::Dotted => r#" stroke-dasharray="2 2""#,
                _ => "",
            };
            let _ = write!(
                s,
                r#"<g class="legend"><line x1="{lx:.1}" x2="{:.1}" y1="14" y2="14" stroke="{c}" stroke-width="3"{dash}/><text x="{:.1}" y="18">{}</text></g>"#,
                lx + 14.0,
                lx + 18.0,
                esc(&series.label),
                c = series.color
            );
        }
        s.push_str("</svg>");
        s
    }

    fn render_series(
        &self,
        series: &Series,
        sx: &dyn Fn(f64) -> f64,
        sy: &dyn Fn(f64) -> f64,
    ) -> String {
        let mut s = String::new();
        let node = esc(&series.node);
        let title = esc(&series.label);
        if series.style == Style::Dots {
            let _ = write!(
                s,
                r#"<g class="dots" data-node="{node}" fill="{}"><title>{title}</title>"#,
                series.color
            );
            for (x, y) in series.points.iter().filter_map(|(x, y)| y.map(|y| (*x, y))) {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                    sx(x),
                    sy(y)
                );
            }
            s.push_str("</g>");
            return s;
        }
        let mut d = String::new();
        let mut pen_down = false;
        let points = downsample(&series.points, MAX_LINE_POINTS);
        for (x, y) in &points {
            match y {
                Some(y) => {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1}",
                        if pen_down { " L" } else { " M" },
                        sx(*x),
                        sy(*y)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let dash = match series.style {
            Style::Dashed => r#" stroke-dasharray="6 3""#,
            Style::Dotted => r#" stroke-dasharray="2 2""#,
            _ => "",
        };
        let _ = write!(
            s,
            r#"<path class="series" data-node="{node}" d="{}" stroke="{}" fill="none" stroke-width="1.6"{dash}><title>{title}</title></path>"#,
            d.trim(),
            series.color
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day of seconds thins to the limit, keeps the one dark second and the one peak, in
    /// x order, and keeps a gap as a gap.
    #[test]
    fn a_long_line_is_thinned_without_losing_an_outage_or_a_peak() {
        let mut points: Vec<(f64, Option<f64>)> = (0..86_400)
            .map(|s| (s as f64, Some(1000.0 + (s % 7) as f64)))
            .collect();
        points[50_001].1 = Some(0.0);
        points[70_000].1 = Some(5000.0);
        points[80_000].1 = None;
        let thin = downsample(&points, MAX_LINE_POINTS);
        assert!(thin.len() <= MAX_LINE_POINTS + 50, "{} points", thin.len());
        assert!(thin.contains(&(50_001.0, Some(0.0))));
        assert!(thin.contains(&(70_000.0, Some(5000.0))));
        assert!(thin.contains(&(80_000.0, None)));
        assert!(thin.windows(2).all(|w| w[0].0 <= w[1].0), "in x order");
        let short = &points[..100];
        assert_eq!(downsample(short, MAX_LINE_POINTS), short.to_vec());
    }

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0, 10.0), 10.0);
        assert_eq!(nice_step(170.0, 10.0), 20.0);
        assert_eq!(nice_step(460.0, 10.0), 50.0);
        assert_eq!(nice_step(0.8, 4.0), 0.2);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
    }

    #[test]
    fn a_chart_has_a_path_per_series_a_band_per_fault_and_breaks_at_gaps() {
        let chart = Chart {
            id: "t".into(),
            title: "throughput <ops/s>".into(),
            x_label: "seconds".into(),
            y_label: "ops/s".into(),
            width: 800.0,
            height: 240.0,
            x_range: (0.0, 10.0),
            series: (0..3)
                .map(|i| Series {
                    label: format!("n{}", i + 1),
                    node: format!("n{}", i + 1),
                    color: node_color(i),
                    style: Style::Line,
                    points: vec![
                        (0.0, Some(1.0)),
                        (1.0, None),
                        (2.0, Some(3.0)),
                        (3.0, Some(2.0)),
                    ],
                })
                .collect(),
            bands: vec![Band {
                from: 2.0,
                to: 5.0,
                label: "n2 isolated".into(),
            }],
        };
        let svg = chart.render();
        assert_eq!(svg.matches(r#"class="series""#).count(), 3);
        assert!(svg.contains(r#"data-node="n2""#));
        assert_eq!(svg.matches(r#"class="band""#).count(), 1);
        assert!(svg.contains("n2 isolated"));
        assert!(svg.contains("throughput &lt;ops/s&gt;"), "escaped");
        let path = svg.split(r#"data-node="n1" d=""#).nth(1).unwrap();
        assert_eq!(
            path.split('"').next().unwrap().matches('M').count(),
            2,
            "a gap starts a new line"
        );
    }
}
