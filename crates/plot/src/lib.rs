//! SVG charts (plotters, SVG backend only: no font library needed): line charts of curves on a
//! linear or log axis, and contour plots with optimization traces on top (d2l's
//! `show_trace_2d`).

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;

use plotters::prelude::*;

/// Errors of the plotting crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory that could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A chart that could not be drawn.
    #[error("plot {path}: {msg}")]
    Plot {
        /// The SVG file.
        path: std::path::PathBuf,
        /// What went wrong.
        msg: String,
    },
}

/// Result with the plotting crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io { path: path.to_path_buf(), error }
}

/// A named curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points in order.
    pub points: Vec<(f64, f64)>,
    /// A shaded band `(x, low, high)` drawn under the line (a spread over seeds).
    pub band: Vec<(f64, f64, f64)>,
    /// Draw a dot at every point.
    pub markers: bool,
    /// Points drawn as crosses on the line's color and not joined (failed runs).
    pub crosses: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a name and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, band: Vec::new(), markers: false, crosses: Vec::new() }
    }

    /// With a shaded band `(x, low, high)`.
    pub fn with_band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = band;
        self
    }

    /// With a dot at every point.
    pub fn with_markers(mut self) -> Self {
        self.markers = true;
        self
    }

    /// With extra points drawn as crosses.
    pub fn with_crosses(mut self, crosses: Vec<(f64, f64)>) -> Self {
        self.crosses = crosses;
        self
    }
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A line chart's labels and axis choice.
#[derive(Debug, Clone)]
pub struct ChartSpec<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// Logarithmic Y axis.
    pub log_y: bool,
    /// Logarithmic X axis.
    pub log_x: bool,
}

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |msg| Error::Plot { path: path.to_path_buf(), msg }
}

/// Every `(x, y)` a chart shows: the points, the crosses and the bands' edges.
fn all_points(series: &[Series]) -> impl Iterator<Item = (f64, f64)> + '_ {
    series.iter().flat_map(|s| {
        s.points
            .iter()
            .chain(&s.crosses)
            .copied()
            .chain(s.band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]))
    })
}

/// Whether a point can be drawn on the chart's axes.
fn drawable(x: f64, y: f64, log_x: bool, log_y: bool) -> bool {
    x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0)
}

/// One axis' range over `values`, padded: by a factor 1.5 on a log axis, by 5% on a linear one.
fn axis(values: impl Iterator<Item = f64>, log: bool, pad: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (0.1, 1.0) } else { (0.0, 1.0) };
    }
    if log {
        if hi <= lo {
            hi = lo * 10.0;
        }
        if pad {
            (lo / 1.5, hi * 1.5)
        } else {
            (lo, hi)
        }
    } else {
        if hi <= lo {
            hi = lo + 1.0;
        }
        let p = if pad { 0.05 * (hi - lo) } else { 0.0 };
        (lo - p, hi + p)
    }
}

/// The corner for the legend: the one whose box (a third of the width, two fifths of the height)
/// covers the fewest points, upper right first among equals.
fn legend_corner(
    series: &[Series],
    b: (f64, f64, f64, f64),
    log_x: bool,
    log_y: bool,
) -> SeriesLabelPosition {
    let (x0, x1, y0, y1) = b;
    let frac = |v: f64, lo: f64, hi: f64, log: bool| {
        if log {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    let pts: Vec<(f64, f64)> = all_points(series)
        .filter(|&(x, y)| drawable(x, y, log_x, log_y))
        .map(|(x, y)| (frac(x, x0, x1, log_x), frac(y, y0, y1, log_y)))
        .collect();
    let count = |right: bool, upper: bool| {
        pts.iter()
            .filter(|(fx, fy)| {
                (if right { *fx > 0.66 } else { *fx < 0.34 }) && (if upper { *fy > 0.6 } else { *fy < 0.4 })
            })
            .count()
    };
    [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ]
    .into_iter()
    .min_by_key(|&(_, right, upper)| count(right, upper))
    .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

fn bounds(series: &[Series], log_x: bool, log_y: bool) -> (f64, f64, f64, f64) {
    let pts: Vec<(f64, f64)> = all_points(series).filter(|&(x, y)| drawable(x, y, log_x, log_y)).collect();
    let (x0, x1) = axis(pts.iter().map(|p| p.0), log_x, log_x);
    let (y0, y1) = axis(pts.iter().map(|p| p.1), log_y, true);
    (x0, x1, y0, y1)
}

/// A tick label: few digits, exponent form for small or large magnitudes.
fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Writes a line chart of `series` to `path` (SVG), with a legend: each series a line (with dots
/// when it asks for markers), its band shaded beneath it, its crosses on top.
pub fn line_chart(path: &Path, spec: &ChartSpec<'_>, series: &[Series]) -> Result<()> {
    let e = plot_err(path);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let (x0, x1, y0, y1) = bounds(series, spec.log_x, spec.log_y);
    let corner = legend_corner(series, (x0, x1, y0, y1), spec.log_x, spec.log_y);
    let ok = |&(x, y): &(f64, f64)| drawable(x, y, spec.log_x, spec.log_y);
    let mut builder = ChartBuilder::on(&root);
    builder.caption(spec.title, ("sans-serif", 22)).margin(15).x_label_area_size(45).y_label_area_size(75);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(|x| e(x.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(spec.x_label)
                .y_desc(spec.y_label)
                .x_label_formatter(&|x| tick(*x))
                .y_label_formatter(&|y| tick(*y))
                .draw()
                .map_err(|x| e(x.to_string()))?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let band: Vec<(f64, f64, f64)> =
                    s.band.iter().copied().filter(|&(x, lo, hi)| ok(&(x, lo)) && ok(&(x, hi))).collect();
                if band.len() > 1 {
                    let outline: Vec<(f64, f64)> = band
                        .iter()
                        .map(|&(x, _, hi)| (x, hi))
                        .chain(band.iter().rev().map(|&(x, lo, _)| (x, lo)))
                        .collect();
                    chart
                        .draw_series(std::iter::once(Polygon::new(outline, color.mix(0.2).filled())))
                        .map_err(|x| e(x.to_string()))?;
                }
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(ok).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|x| e(x.to_string()))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                if s.markers {
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|x| e(x.to_string()))?;
                }
                let crosses: Vec<(f64, f64)> = s.crosses.iter().copied().filter(ok).collect();
                chart
                    .draw_series(crosses.iter().map(|&p| Cross::new(p, 6, color.stroke_width(2))))
                    .map_err(|x| e(x.to_string()))?;
            }
            chart
                .configure_series_labels()
                .position(corner.clone())
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|x| e(x.to_string()))?;
        }};
    }
    match (spec.log_x, spec.log_y) {
        (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1)),
        (false, true) => draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())),
        (true, false) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)),
        (true, true) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())),
    }
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// Grid cells per axis of a contour plot.
const CONTOUR_GRID: usize = 120;
/// Contour lines drawn, at the quantiles `(k / CONTOUR_LEVELS)²` of `f` over the grid, `k` from 1.
const CONTOUR_LEVELS: usize = 12;

/// Writes a contour plot of `f` over `[x0, x1] × [y0, y1]` with each trace drawn on top as a
/// line with dots (d2l's `show_trace_2d`), with a legend when there are several traces.
pub fn contour_with_traces(
    path: &Path,
    title: &str,
    f: &dyn Fn(f64, f64) -> f64,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    traces: &[Series],
) -> Result<()> {
    let e = plot_err(path);
    let root = SVGBackend::new(path, (700, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|x| e(x.to_string()))?;
    chart.configure_mesh().x_desc("x1").y_desc("x2").draw().map_err(|x| e(x.to_string()))?;

    // Contour levels by marching squares on a grid, at quantiles of f over the grid.
    let n = CONTOUR_GRID;
    let grid: Vec<Vec<f64>> = (0..=n)
        .map(|j| {
            (0..=n)
                .map(|i| f(x0 + (x1 - x0) * i as f64 / n as f64, y0 + (y1 - y0) * j as f64 / n as f64))
                .collect()
        })
        .collect();
    let mut all: Vec<f64> = grid.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return Err(e(format!("the function is not finite anywhere on [{x0}, {x1}] x [{y0}, {y1}]")));
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let levels: Vec<f64> = (1..CONTOUR_LEVELS)
        .map(|k| all.get((all.len() - 1) * k * k / (CONTOUR_LEVELS * CONTOUR_LEVELS)).copied().unwrap_or(0.0))
        .collect();
    let at =
        |i: usize, j: usize| (x0 + (x1 - x0) * i as f64 / n as f64, y0 + (y1 - y0) * j as f64 / n as f64);
    let mut segments = Vec::new();
    for level in &levels {
        for j in 0..n {
            for i in 0..n {
                let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
                let mut cross = Vec::with_capacity(4);
                for k in 0..4 {
                    let (a, b) = (corners[k], corners[(k + 1) % 4]);
                    let (va, vb) = (grid[a.1][a.0] - level, grid[b.1][b.0] - level);
                    if (va < 0.0) != (vb < 0.0) {
                        let t = va / (va - vb);
                        let (pa, pb) = (at(a.0, a.1), at(b.0, b.1));
                        cross.push((pa.0 + t * (pb.0 - pa.0), pa.1 + t * (pb.1 - pa.1)));
                    }
                }
                for pair in cross.chunks(2) {
                    if let [p, q] = pair {
                        segments.push(vec![*p, *q]);
                    }
                }
            }
        }
    }
    let contour_color = RGBColor(150, 150, 190);
    chart
        .draw_series(segments.into_iter().map(|s| PathElement::new(s, contour_color.stroke_width(1))))
        .map_err(|x| e(x.to_string()))?;
    for (i, t) in traces.iter().enumerate() {
        let color = if traces.len() == 1 { RGBColor(255, 127, 14) } else { PALETTE[i % PALETTE.len()] };
        let inside: Vec<(f64, f64)> =
            t.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(inside.clone(), color.stroke_width(2)))
            .map_err(|x| e(x.to_string()))?
            .label(t.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(inside.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|x| e(x.to_string()))?;
    }
    if traces.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(x.to_string()))?;
    }
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// Checks that `dir` exists or can be created, and that a file can be written in it.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let probe = dir.join(".taper-write-test");
    std::fs::write(&probe, b"").map_err(io_err(dir))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_readable_svgs() {
        let dir = std::env::temp_dir().join(format!("taper-plot-{}", std::process::id()));
        ensure_writable_dir(&dir).unwrap();
        let p = dir.join("lines.svg");
        let s = vec![
            Series::new("adagrad", (1..100).map(|t| (t as f64, 1.0 / (t as f64).sqrt())).collect()),
            Series::new("rmsprop", (1..100).map(|t| (t as f64, 0.3)).collect()),
        ];
        line_chart(
            &p,
            &ChartSpec { title: "effective lr", x_label: "step", y_label: "lr", log_y: true, log_x: false },
            &s,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(
            svg.starts_with("<svg")
                && svg.contains("adagrad")
                && svg.contains("rmsprop")
                && svg.contains("step")
        );
        let p = dir.join("contour.svg");
        let f = |x: f64, y: f64| 0.1 * x * x + 2.0 * y * y;
        let t = vec![Series::new("gd", vec![(-5.0, -2.0), (-4.0, -0.4), (-3.0, 0.1)])];
        contour_with_traces(&p, "trace", &f, (-5.5, 1.0), (-3.0, 1.0), &t).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.matches("<polyline").count() + svg.matches("<path").count() > 20, "contours drawn");
        assert!(svg.contains("<circle"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bands_markers_crosses_and_a_log_x_axis_are_drawn() {
        let dir = std::env::temp_dir().join(format!("taper-plot-band-{}", std::process::id()));
        ensure_writable_dir(&dir).unwrap();
        let p = dir.join("band.svg");
        let lrs = [1e-4, 1e-3, 1e-2, 1e-1];
        let s = vec![Series::new("adam", lrs.iter().map(|&x| (x, 1.0 - x)).collect())
            .with_band(lrs.iter().map(|&x| (x, 0.5 - x, 1.5 - x)).collect())
            .with_markers()
            .with_crosses(vec![(1.0, 2.0)])];
        let spec =
            ChartSpec { title: "sensitivity", x_label: "lr", y_label: "loss", log_y: false, log_x: true };
        line_chart(&p, &spec, &s).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert_eq!(svg.matches("<polygon").count(), 1, "one band");
        assert_eq!(svg.matches("<circle").count(), lrs.len(), "a dot per point");
        assert!(
            svg.matches("<line").count() + svg.matches("<polyline").count() >= 3,
            "a cross and the curve"
        );
        // The legend goes to the corner with the fewest points: upper left here, the data being
        // in the upper right and one point in the lower left.
        let crowded = vec![Series::new("a", vec![(0.0, 0.0), (8.0, 9.0), (9.0, 10.0), (10.0, 10.0)])];
        let corner = legend_corner(&crowded, bounds(&crowded, false, false), false, false);
        assert!(matches!(corner, SeriesLabelPosition::UpperLeft), "{corner:?}");
        let empty = legend_corner(&[], bounds(&[], false, false), false, false);
        assert!(matches!(empty, SeriesLabelPosition::UpperRight), "{empty:?}");
        // The cross at x = 1 widens the x axis past the points; a log axis never reaches 0.
        let (x0, x1, y0, _) = bounds(&s, true, true);
        assert!(x0 < 1e-4 && x0 > 0.0 && x1 > 1.0 && y0 > 0.0, "{x0} {x1} {y0}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_function_not_finite_anywhere_is_an_error() {
        let dir = std::env::temp_dir().join(format!("taper-plot-nan-{}", std::process::id()));
        ensure_writable_dir(&dir).unwrap();
        let f = |_: f64, _: f64| f64::NAN;
        let err =
            contour_with_traces(&dir.join("c.svg"), "nan", &f, (-1.0, 1.0), (-1.0, 1.0), &[]).unwrap_err();
        assert!(err.to_string().contains("not finite anywhere"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        assert!(ensure_writable_dir(Path::new("/proc/taper-cannot-write-here")).is_err());
    }
}
