//! Small pictures as PNG: spectrogram grids (data previews, the report), line charts
//! (training curves, quality against TIR), heat maps (uncertainty of the mask) and labelled
//! matrices (quality per method and label).
//!
//! Charts are drawn by plotters' bitmap backend with a bundled font (a subset of DejaVu Sans,
//! rasterised by ab_glyph: no fontconfig, freetype or system fonts), with axes, ticks, titles
//! with units, legends and colour bars. Spectrograms are pixels drawn directly (magma colours)
//! with the public-domain 8x8 bitmap font of `font8x8` for their row titles. Everything goes
//! through an RGB buffer encoded by the `png` crate and is written atomically.

use std::path::Path;

use anyhow::{Context, ensure};
use font8x8::UnicodeFonts;
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::Result;
use crate::dsp::stft::{Stft, StftConfig};

/// Dynamic range shown by spectrograms, dB below the loudest bin of the grid.
pub const SPECTROGRAM_RANGE_DB: f32 = 80.0;

const BLACK: [u8; 3] = [0, 0, 0];

/// An RGB picture.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Text with its top-left corner at (x, y), 8 px per character times `scale`.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?'));
            let Some(g) = glyph else { continue };
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let px = x + (k as i64 * 8 + col) * scale + dx;
                                self.set(px, y + row as i64 * scale + dy, c);
                            }
                        }
                    }
                }
            }
        }
    }

    fn encode(&self, w: impl std::io::Write) -> Result<()> {
        let mut enc = png::Encoder::new(w, self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(&self.px)?;
        wr.finish()?;
        Ok(())
    }

    fn write(&self, path: &Path) -> Result<()> {
        crate::atomic::write_with(path, |w| self.encode(w))
    }

    fn png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// Log-magnitude spectrogram in dB: `(frames, bins)` frame-major, n_fft 1024, hop 256, Hann.
fn log_spectrogram(x: &[f32]) -> Result<(usize, usize, Vec<f32>)> {
    let stft = Stft::new(StftConfig::hann(1024, 256))?;
    let s = stft.forward(x);
    let db = s.data.iter().map(|c| 10.0 * (c.norm_sqr() + 1e-12).log10()).collect();
    Ok((s.n_frames, s.n_bins, db))
}

/// Writes one log-magnitude spectrogram per row (time left to right, 0 Hz at the bottom,
/// linear frequency, magma colours over the top [`SPECTROGRAM_RANGE_DB`] dB of the whole grid
/// so rows compare), each under its title, to a PNG at `path`.
pub fn write_spectrogram_grid<S: AsRef<str>, A: AsRef<[f32]>>(path: &Path, rows: &[(S, A, u32)]) -> Result<()> {
    ensure!(!rows.is_empty(), "{}: no rows to draw", path.display());
    const HEIGHT: usize = 160;
    const TITLE: usize = 14;
    const MARGIN: usize = 6;
    let specs: Vec<(usize, usize, Vec<f32>)> = rows
        .iter()
        .map(|(_, x, _)| log_spectrogram(x.as_ref()))
        .collect::<Result<_>>()
        .with_context(|| format!("{}", path.display()))?;
    let top = specs
        .iter()
        .flat_map(|s| s.2.iter())
        .fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    // Frames wider than 1600 px are max-pooled.
    let max_frames = specs.iter().map(|s| s.0).max().unwrap_or(1).max(1);
    let pool = max_frames.div_ceil(1600);
    let title_w = rows
        .iter()
        .zip(&specs)
        .map(|((t, x, rate), _)| label_for(t.as_ref(), x.as_ref().len(), *rate).len() * 8)
        .max()
        .unwrap_or(0);
    let w = (max_frames.div_ceil(pool)).max(title_w) + 2 * MARGIN;
    let h = rows.len() * (HEIGHT + TITLE + MARGIN) + MARGIN;
    let mut cv = Canvas::new(w, h);
    for (r, ((title, x, rate), (frames, bins, db))) in rows.iter().zip(&specs).enumerate() {
        let y0 = MARGIN + r * (HEIGHT + TITLE + MARGIN);
        cv.text(
            MARGIN as i64,
            y0 as i64 + 2,
            &label_for(title.as_ref(), x.as_ref().len(), *rate),
            1,
            BLACK,
        );
        let py0 = y0 + TITLE;
        for px in 0..frames.div_ceil(pool) {
            for py in 0..HEIGHT {
                // Pixel row py (0 = top) covers bins [b0, b1).
                let f = HEIGHT - 1 - py;
                let b0 = f * bins / HEIGHT;
                let b1 = ((f + 1) * bins / HEIGHT).max(b0 + 1).min(*bins);
                let mut v = f32::NEG_INFINITY;
                for t in px * pool..((px + 1) * pool).min(*frames) {
                    for b in b0..b1 {
                        v = v.max(db[t * bins + b]);
                    }
                }
                let u = ((v - top + SPECTROGRAM_RANGE_DB) / SPECTROGRAM_RANGE_DB).clamp(0.0, 1.0);
                let c = colorous::MAGMA.eval_continuous(f64::from(u));
                cv.set((MARGIN + px) as i64, (py0 + py) as i64, [c.r, c.g, c.b]);
            }
        }
    }
    cv.write(path)
}

/// Cells `[a, max(b, a + 1))` that item `i` of `n` covers on an axis of `cells`: every cell
/// gets at least one item (items repeat when fewer than cells, are pooled when more).
fn cover(i: usize, n: usize, cells: usize) -> std::ops::Range<usize> {
    let a = i * cells / n;
    a..((i + 1) * cells / n).max(a + 1).min(cells)
}

/// The log-magnitude spectrogram of `x` (n_fft 1024, hop 256, Hann, dB) max-pooled into
/// `width x height` cells (frames and bins pooled, or repeated when fewer than cells; row 0 =
/// the top = Nyquist), computed in blocks of frames so a long signal needs no more memory than
/// one block.
pub fn pooled_spectrogram(x: &[f32], width: usize, height: usize) -> Result<PooledSpectrogram> {
    ensure!(
        width > 0 && height > 0,
        "a spectrogram needs a size, got {width}x{height}"
    );
    const N_FFT: usize = 1024;
    const HOP: usize = 256;
    const BLOCK: usize = 2048;
    // Frames whose window reaches past a block's edge: computed again in the next block.
    const MARGIN: usize = N_FFT / 2 / HOP;
    let stft = Stft::new(StftConfig::hann(N_FFT, HOP))?;
    let frames = stft.n_frames(x.len()).max(1);
    let bins = N_FFT / 2 + 1;
    let mut cells = vec![f32::NEG_INFINITY; width * height];
    let mut t0 = 0;
    while t0 < frames {
        let t1 = (t0 + BLOCK).min(frames);
        // The slice starts MARGIN frames early (or at 0), so its frame k is global frame
        // first + k, and its windows lie inside the signal as the global ones do.
        let first = t0.saturating_sub(MARGIN);
        let start = first * HOP;
        let end = ((t1 + MARGIN) * HOP).min(x.len());
        let spec = stft.forward(&x[start.min(x.len())..end]);
        let mut column = vec![f32::NEG_INFINITY; height];
        for t in t0..t1 {
            let k = t - first;
            if k >= spec.n_frames {
                break;
            }
            column.fill(f32::NEG_INFINITY);
            for (b, c) in spec.frame(k).iter().enumerate() {
                let v = 10.0 * (c.norm_sqr() + 1e-12).log10();
                for py in cover(b, bins, height) {
                    column[py] = column[py].max(v);
                }
            }
            for px in cover(t, frames, width) {
                for (py, &v) in column.iter().enumerate() {
                    let cell = &mut cells[(height - 1 - py) * width + px];
                    *cell = cell.max(v);
                }
            }
        }
        t0 = t1;
    }
    Ok(PooledSpectrogram { cells, width, height })
}

/// A spectrogram max-pooled to a picture's cells ([`pooled_spectrogram`]), in dB.
#[derive(Clone, Debug)]
pub struct PooledSpectrogram {
    /// `width x height`, row-major, row 0 at the top (Nyquist).
    pub cells: Vec<f32>,
    pub width: usize,
    pub height: usize,
}

/// Pictures of spectrograms pooled by [`pooled_spectrogram`], one PNG each: time left to right,
/// 0 Hz at the bottom up to each signal's Nyquist frequency, linear, magma colours over the top
/// [`SPECTROGRAM_RANGE_DB`] dB of all of them together, so the pictures compare. No text: the
/// caller labels them (the report does, in HTML).
pub fn spectrogram_pngs(pooled: &[PooledSpectrogram]) -> Result<Vec<Vec<u8>>> {
    let top = pooled
        .iter()
        .flat_map(|p| p.cells.iter())
        .fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    pooled
        .iter()
        .map(|p| {
            let mut cv = Canvas::new(p.width, p.height);
            for (i, v) in p.cells.iter().enumerate() {
                let u = ((v - top + SPECTROGRAM_RANGE_DB) / SPECTROGRAM_RANGE_DB).clamp(0.0, 1.0);
                let c = colorous::MAGMA.eval_continuous(f64::from(u));
                cv.set((i % p.width) as i64, (i / p.width) as i64, [c.r, c.g, c.b]);
            }
            cv.png()
        })
        .collect()
}

fn label_for(title: &str, n: usize, rate: u32) -> String {
    format!(
        "{title}  ({:.2} s, 0-{} Hz)",
        n as f64 / f64::from(rate.max(1)),
        rate / 2
    )
}

/// The bundled chart font: a subset of DejaVu Sans (printable ASCII and a few symbols;
/// assets/fonts/README.md says how it was made and under which licence).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// Registers [`FONT`] with plotters once.
fn font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    ensure!(ok, "the bundled chart font does not load");
    Ok(())
}

/// A `w x h` white picture drawn by `draw` through plotters' bitmap backend, written to `path`.
fn plot(path: &Path, w: usize, h: usize, draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    font()?;
    let mut cv = Canvas::new(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut cv.px, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    cv.write(path)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

/// A tick label without trailing zeros (`1`, `0.25`, `-3.5`; very large or small in e
/// notation).
fn tick(v: &f64) -> String {
    let v = *v;
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Series colour `k`: Tableau 10, then the same ten darkened, so up to 20 series differ.
fn tableau(k: usize) -> RGBColor {
    let n = colorous::TABLEAU10.len();
    let c = colorous::TABLEAU10[k % n];
    let f = if (k / n) % 2 == 1 { 0.55 } else { 1.0 };
    let d = |v: u8| (f64::from(v) * f) as u8;
    RGBColor(d(c.r), d(c.g), d(c.b))
}

/// Titles of a chart: the caption and each axis' quantity with its unit, e.g. `"step"`,
/// `"SI-SDRi (dB)"`.
#[derive(Clone, Copy, Debug)]
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// Writes a line chart (900 x 540) with plotters: one line per series (Tableau 10 colours) and
/// a legend naming them, a light grid, ticks and the axis titles of `axes`. Non-finite points
/// are skipped (the line breaks there).
pub fn write_line_chart<S: AsRef<str>>(path: &Path, axes: &Axes, series: &[(S, Vec<(f64, f64)>)]) -> Result<()> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let pts = || series.iter().flat_map(|s| s.1.iter()).filter(finite);
    ensure!(pts().next().is_some(), "{}: no finite points to draw", path.display());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts() {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    // A little air above and below the data.
    let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5 };
    (y0, y1) = (y0 - pad, y1 + pad);
    plot(path, 900, 540, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(axes.title, (FAMILY, 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(plot_err)?;
        for (k, (name, points)) in series.iter().enumerate() {
            let colour = tableau(k);
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for p in points {
                if finite(&p) {
                    if let Some(r) = runs.last_mut() {
                        r.push(*p);
                    }
                } else if runs.last().is_some_and(|r| !r.is_empty()) {
                    runs.push(Vec::new());
                }
            }
            for (i, run) in runs.into_iter().filter(|r| !r.is_empty()).enumerate() {
                let drawn = chart
                    .draw_series(
                        LineSeries::new(run, colour.stroke_width(2)).point_size(if points.len() < 40 { 3 } else { 0 }),
                    )
                    .map_err(plot_err)?;
                if i == 0 {
                    drawn
                        .label(name.as_ref())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3)));
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FAMILY, 14))
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })
}

/// One panel of [`write_heatmap_grid`]: `values` is `n_rows x n_cols`, row-major, row 0 drawn
/// at the bottom, spanning `x` and `y` in axis units; colours (viridis) span `range`.
pub struct Heatmap<'a> {
    pub title: String,
    pub values: &'a [f32],
    pub n_rows: usize,
    pub n_cols: usize,
    pub range: (f32, f32),
    /// Axis extents and titles (with units).
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub x_label: String,
    pub y_label: String,
    /// What the colours mean, with its unit (the colour bar's title).
    pub unit: String,
}

fn viridis(u: f64) -> RGBColor {
    let c = colorous::VIRIDIS.eval_continuous(u.clamp(0.0, 1.0));
    RGBColor(c.r, c.g, c.b)
}

/// A vertical colour bar for `range` titled `unit`, in `area`.
fn colour_bar(area: &Area, range: (f32, f32), unit: &str) -> Result<()> {
    let (lo, hi) = (f64::from(range.0), f64::from(range.1.max(range.0 + f32::EPSILON)));
    let mut bar = ChartBuilder::on(area)
        .margin_top(34)
        .margin_bottom(52)
        .margin_right(8)
        .y_label_area_size(0)
        .right_y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(plot_err)?;
    bar.configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .disable_x_axis()
        .y_desc(unit)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .map_err(plot_err)?;
    let steps = 64;
    bar.draw_series((0..steps).map(|i| {
        let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        Rectangle::new(
            [(0.0, lo + a * (hi - lo)), (1.0, lo + b * (hi - lo))],
            viridis((a + b) / 2.0).filled(),
        )
    }))
    .map_err(plot_err)?;
    Ok(())
}

/// Writes matrices (e.g. band masks and their spread over samples) as stacked panels with
/// axes, ticks and a colour bar each: columns left to right (max-pooled to at most 1,000),
/// viridis colours, 960 x 300 px per panel.
pub fn write_heatmap_grid(path: &Path, maps: &[Heatmap]) -> Result<()> {
    ensure!(!maps.is_empty(), "{}: no panels to draw", path.display());
    for m in maps {
        ensure!(
            m.values.len() == m.n_rows * m.n_cols && m.n_rows > 0 && m.n_cols > 0,
            "{}: '{}' is not a {}x{} matrix",
            path.display(),
            m.title,
            m.n_rows,
            m.n_cols
        );
    }
    const PANEL: usize = 300;
    plot(path, 960, PANEL * maps.len(), |root| {
        for (m, panel) in maps.iter().zip(root.split_evenly((maps.len(), 1))) {
            let (main, side) = panel.split_horizontally(860);
            let pool = m.n_cols.div_ceil(1000);
            let cols = m.n_cols.div_ceil(pool);
            let mut chart = ChartBuilder::on(&main)
                .caption(&m.title, (FAMILY, 17))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(64)
                .build_cartesian_2d(m.x.0..m.x.1, m.y.0..m.y.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(m.x_label.as_str())
                .y_desc(m.y_label.as_str())
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .label_style((FAMILY, 13))
                .axis_desc_style((FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
            let (lo, hi) = m.range;
            let span = f64::from((hi - lo).max(f32::EPSILON));
            let (dx, dy) = ((m.x.1 - m.x.0) / cols as f64, (m.y.1 - m.y.0) / m.n_rows as f64);
            let cells = (0..m.n_rows).flat_map(|r| (0..cols).map(move |c| (r, c)));
            chart
                .draw_series(cells.map(|(r, c)| {
                    let v = (c * pool..((c + 1) * pool).min(m.n_cols))
                        .map(|k| m.values[r * m.n_cols + k])
                        .fold(f32::NEG_INFINITY, f32::max);
                    let (x, y) = (m.x.0 + c as f64 * dx, m.y.0 + r as f64 * dy);
                    Rectangle::new([(x, y), (x + dx, y + dy)], viridis(f64::from(v - lo) / span).filled())
                }))
                .map_err(plot_err)?;
            colour_bar(&side, m.range, &m.unit)?;
        }
        Ok(())
    })
}

/// Writes a labelled matrix (rows x columns, e.g. methods x labels) as coloured cells with the
/// value printed in each, a colour bar titled `unit` and the row and column names as ticks.
/// `values` is row-major; NaN cells stay grey.
pub fn write_matrix<R: AsRef<str>, C: AsRef<str>>(
    path: &Path,
    title: &str,
    rows: &[R],
    cols: &[C],
    values: &[f64],
    range: (f32, f32),
    unit: &str,
) -> Result<()> {
    let (nr, nc) = (rows.len(), cols.len());
    ensure!(
        nr > 0 && nc > 0 && values.len() == nr * nc,
        "{}: a {nr}x{nc} matrix needs {} values",
        path.display(),
        nr * nc
    );
    let row_w = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0) * 8 + 24;
    let w = (row_w + 80 * nc + 110).max(480);
    let h = 34 * nr + 150;
    plot(path, w, h, |root| {
        let (main, side) = root.split_horizontally((w - 90) as u32);
        let mut chart = ChartBuilder::on(&main)
            .caption(title, (FAMILY, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(row_w as u32)
            // An integer range is inclusive in plotters: 0..n-1 has n segments.
            .build_cartesian_2d((0..nc - 1).into_segmented(), (0..nr - 1).into_segmented())
            .map_err(plot_err)?;
        let col_name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => cols.get(*i).map_or(String::new(), |c| c.as_ref().to_string()),
            _ => String::new(),
        };
        // Row 0 at the top, as in a table.
        let row_name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < nr => rows[nr - 1 - i].as_ref().to_string(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&col_name)
            .y_label_formatter(&row_name)
            .label_style((FAMILY, 13))
            .draw()
            .map_err(plot_err)?;
        let (lo, hi) = (f64::from(range.0), f64::from(range.1));
        for r in 0..nr {
            for c in 0..nc {
                let v = values[r * nc + c];
                let y = nr - 1 - r;
                let fill = if v.is_finite() {
                    viridis((v - lo) / (hi - lo).max(f64::EPSILON))
                } else {
                    RGBColor(200, 200, 200)
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [
                            (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                        ],
                        fill.filled(),
                    )))
                    .map_err(plot_err)?;
                // Light text on dark cells.
                let ink = if v.is_finite() && (v - lo) / (hi - lo).max(f64::EPSILON) < 0.55 {
                    WHITE
                } else {
                    RGBColor(0, 0, 0)
                };
                let text = if v.is_finite() { format!("{v:.1}") } else { "-".into() };
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                        (FAMILY, 13)
                            .into_font()
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(plot_err)?;
            }
        }
        colour_bar(&side, range, unit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-wise pooled spectrogram equals pooling the whole spectrogram at once, for
    /// signals shorter than a block, several blocks long, and fewer frames than pixels.
    #[test]
    fn pooled_spectrogram_in_blocks_equals_the_whole() {
        let mut s = 7u64;
        for (len, width, height) in [(40_000usize, 64usize, 20usize), (1_300_000, 300, 33), (3_000, 50, 7)] {
            let x: Vec<f32> = (0..len)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (i as f32 * 0.01).sin() * ((s >> 40) as f32 / (1u64 << 24) as f32)
                })
                .collect();
            let got = pooled_spectrogram(&x, width, height).unwrap().cells;
            let (frames, bins, db) = log_spectrogram(&x).unwrap();
            let mut want = vec![f32::NEG_INFINITY; width * height];
            for t in 0..frames {
                for b in 0..bins {
                    for px in cover(t, frames, width) {
                        for py in cover(b, bins, height) {
                            let c = &mut want[(height - 1 - py) * width + px];
                            *c = c.max(db[t * bins + b]);
                        }
                    }
                }
            }
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-3, "len {len}: {worst} dB apart");
            assert!(got.iter().all(|v| v.is_finite()), "len {len}: a cell got no frame");
        }
    }

    /// Charts are drawn with the bundled font: text makes dark pixels, titles change the
    /// picture, and the sizes are as documented.
    #[test]
    fn ticks_drop_trailing_zeros() {
        let t = |v: f64| tick(&v);
        assert_eq!(
            [t(1.0), t(0.25), t(-3.5), t(0.0), t(-0.0), t(64.0)],
            ["1", "0.25", "-3.5", "0", "0", "64"]
        );
        assert_eq!([t(2e-4), t(3e7)], ["2.0e-4", "3.0e7"]);
    }

    #[test]
    fn charts_draw_text_lines_and_cells() {
        let tmp = tempfile::tempdir().unwrap();
        let read = |p: &Path| {
            let mut d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()))
                .read_info()
                .unwrap();
            let mut buf = vec![0; d.output_buffer_size().unwrap()];
            let info = d.next_frame(&mut buf).unwrap();
            (info.width, info.height, buf)
        };
        let dark = |px: &[u8]| px.chunks(3).filter(|c| c.iter().all(|&v| v < 80)).count();
        let line = tmp.path().join("line.png");
        let pts: Vec<(f64, f64)> = (0..50).map(|i| (i as f64 * 100.0, (i as f64 / 10.0).sin())).collect();
        let axes = Axes {
            title: "loss",
            x: "step",
            y: "loss (1)",
        };
        write_line_chart(
            &line,
            &axes,
            &[("train", pts.clone()), ("valid", vec![(0.0, f64::NAN), (10.0, 0.5)])],
        )
        .unwrap();
        let (w, h, px) = read(&line);
        assert_eq!((w, h), (900, 540));
        let orange = px
            .chunks(3)
            .filter(|c| c == &[0xf2, 0x8e, 0x2b] || c == &[0x4e, 0x79, 0xa7])
            .count();
        assert!(orange > 200, "series colours drawn: {orange} pixels");
        let untitled = tmp.path().join("untitled.png");
        write_line_chart(
            &untitled,
            &Axes {
                title: "",
                x: "",
                y: "",
            },
            &[("train", pts)],
        )
        .unwrap();
        assert!(dark(&px) > dark(&read(&untitled).2) + 100, "titles draw no text");

        let values: Vec<f32> = (0..64 * 300).map(|i| (i % 300) as f32 / 300.0).collect();
        let heat = tmp.path().join("heat.png");
        let map = Heatmap {
            title: "mask".into(),
            values: &values,
            n_rows: 64,
            n_cols: 300,
            range: (0.0, 1.0),
            x: (0.0, 10.0),
            y: (0.0, 64.0),
            x_label: "time (s)".into(),
            y_label: "band".into(),
            unit: "mask (0-1)".into(),
        };
        write_heatmap_grid(&heat, &[map]).unwrap();
        let (w, h, px) = read(&heat);
        assert_eq!((w, h), (960, 300));
        let yellow = px.chunks(3).filter(|c| c[0] > 200 && c[1] > 200 && c[2] < 80).count();
        assert!(yellow > 1000, "viridis' top colour drawn: {yellow} pixels");

        let m = tmp.path().join("matrix.png");
        write_matrix(
            &m,
            "SI-SDRi",
            &["a", "method b"],
            &["drums", "bass", "speech"],
            &[1.0, 2.0, f64::NAN, -3.0, 10.0, 20.0],
            (-5.0, 20.0),
            "dB",
        )
        .unwrap();
        let (w, h, _) = read(&m);
        assert!(w >= 480 && h == 34 * 2 + 150, "{w}x{h}");
        assert!(write_matrix(&m, "", &["a"], &["b"], &[1.0, 2.0], (0.0, 1.0), "").is_err());
    }
}
