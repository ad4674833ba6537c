//! Small pictures as PNG: spectrogram grids (data previews) and line charts (training curves).
//!
//! Drawn into an RGB buffer and encoded with the `png` crate; text uses the public-domain 8x8
//! bitmap font of the `font8x8` crate and colours come from `colorous` (magma, Tableau 10), so
//! nothing needs system libraries (plotters' text needs fontconfig/freetype or a font file).
//! Files are written atomically (temporary file, then rename).

use std::path::Path;

use anyhow::{Context, ensure};
use font8x8::UnicodeFonts;

use crate::Result;
use crate::dsp::stft::{Stft, StftConfig};

/// Dynamic range shown by spectrograms, dB below the loudest bin of the grid.
pub const SPECTROGRAM_RANGE_DB: f32 = 80.0;

const BLACK: [u8; 3] = [0, 0, 0];
const GREY: [u8; 3] = [200, 200, 200];

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

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            self.set(
                (x0 + t * (x1 - x0)).round() as i64,
                (y0 + t * (y1 - y0)).round() as i64,
                c,
            );
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

/// A "nice" tick step (1, 2 or 5 times a power of ten) for about `n` ticks over `range`.
fn tick_step(range: f64, n: f64) -> f64 {
    let raw = (range / n).max(f64::MIN_POSITIVE);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn tick_label(v: f64, step: f64) -> String {
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.1e}")
    } else {
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// Writes a line chart (800x500): one coloured line per series (Tableau 10 colours), a legend
/// with the names, ticks on both axes and `x_label` under the x axis. Non-finite points are
/// skipped (the line breaks there).
pub fn write_line_chart<S: AsRef<str>>(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(S, Vec<(f64, f64)>)],
) -> Result<()> {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.1.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    ensure!(pts().next().is_some(), "{}: no finite points to draw", path.display());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts() {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    if y1 <= y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let (w, h) = (800usize, 500usize);
    let (left, right, top, bottom) = (80.0, 20.0, 36.0, 50.0);
    let (pw, ph) = (w as f64 - left - right, h as f64 - top - bottom);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * ph;
    let mut cv = Canvas::new(w, h);
    cv.text(left as i64, 10, title, 2, BLACK);
    // Grid and tick labels.
    let xs = tick_step(x1 - x0, 8.0);
    let mut t = (x0 / xs).ceil() * xs;
    while t <= x1 + 1e-9 * xs {
        let px = sx(t);
        cv.line((px, top), (px, top + ph), GREY);
        let s = tick_label(t, xs);
        cv.text(px as i64 - 4 * s.len() as i64, (top + ph) as i64 + 6, &s, 1, BLACK);
        t += xs;
    }
    let ys = tick_step(y1 - y0, 6.0);
    let mut t = (y0 / ys).ceil() * ys;
    while t <= y1 + 1e-9 * ys {
        let py = sy(t);
        cv.line((left, py), (left + pw, py), GREY);
        let s = tick_label(t, ys);
        cv.text(left as i64 - 6 - 8 * s.len() as i64, py as i64 - 4, &s, 1, BLACK);
        t += ys;
    }
    cv.line((left, top), (left, top + ph), BLACK);
    cv.line((left, top + ph), (left + pw, top + ph), BLACK);
    cv.text(
        (left + pw / 2.0) as i64 - 4 * x_label.len() as i64,
        (top + ph) as i64 + 24,
        x_label,
        1,
        BLACK,
    );
    for (k, (name, p)) in series.iter().enumerate() {
        let c = colorous::TABLEAU10[k % colorous::TABLEAU10.len()];
        let c = [c.r, c.g, c.b];
        let mut prev: Option<(f64, f64)> = None;
        for &(x, y) in p {
            if !(x.is_finite() && y.is_finite()) {
                prev = None;
                continue;
            }
            let q = (sx(x), sy(y));
            match prev {
                // A 2 px wide line: the segment and a copy one pixel lower.
                Some(a) => {
                    cv.line(a, q, c);
                    cv.line((a.0, a.1 + 1.0), (q.0, q.1 + 1.0), c);
                }
                None => cv.set(q.0 as i64, q.1 as i64, c),
            }
            prev = Some(q);
        }
        let ly = top as i64 + 8 + 14 * k as i64;
        let lx = (left + pw) as i64 - 8 * name.as_ref().len() as i64 - 40;
        for d in 0..3 {
            cv.line(
                (lx as f64, (ly + 3 + d) as f64),
                ((lx + 24) as f64, (ly + 3 + d) as f64),
                c,
            );
        }
        cv.text(lx + 30, ly, name.as_ref(), 1, BLACK);
    }
    cv.write(path)
}

/// One matrix row of [`write_heatmap_grid`]: `values` is `n_rows × n_cols`, row-major, row 0
/// drawn at the bottom; colours span `range`.
pub struct Heatmap<'a> {
    pub title: String,
    pub values: &'a [f32],
    pub n_rows: usize,
    pub n_cols: usize,
    pub range: (f32, f32),
}

/// Writes matrices (e.g. band masks and their spread over samples) as stacked images, columns
/// left to right (max-pooled to at most 1600 px), viridis colours, each under its title.
pub fn write_heatmap_grid(path: &Path, maps: &[Heatmap]) -> Result<()> {
    ensure!(!maps.is_empty(), "{}: no rows to draw", path.display());
    const HEIGHT: usize = 128;
    const TITLE: usize = 14;
    const MARGIN: usize = 6;
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
    let max_cols = maps.iter().map(|m| m.n_cols).max().unwrap_or(1);
    let pool = max_cols.div_ceil(1600);
    let title_w = maps.iter().map(|m| m.title.len() * 8).max().unwrap_or(0);
    let w = max_cols.div_ceil(pool).max(title_w) + 2 * MARGIN;
    let h = maps.len() * (HEIGHT + TITLE + MARGIN) + MARGIN;
    let mut cv = Canvas::new(w, h);
    for (r, m) in maps.iter().enumerate() {
        let y0 = MARGIN + r * (HEIGHT + TITLE + MARGIN);
        cv.text(MARGIN as i64, y0 as i64 + 2, &m.title, 1, BLACK);
        let (lo, hi) = m.range;
        let span = (hi - lo).max(f32::EPSILON);
        for px in 0..m.n_cols.div_ceil(pool) {
            for py in 0..HEIGHT {
                let row = (HEIGHT - 1 - py) * m.n_rows / HEIGHT;
                let v = (px * pool..((px + 1) * pool).min(m.n_cols))
                    .map(|c| m.values[row * m.n_cols + c])
                    .fold(f32::NEG_INFINITY, f32::max);
                let c = colorous::VIRIDIS.eval_continuous(f64::from(((v - lo) / span).clamp(0.0, 1.0)));
                cv.set((MARGIN + px) as i64, (y0 + TITLE + py) as i64, [c.r, c.g, c.b]);
            }
        }
    }
    cv.write(path)
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

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(10.0, 5.0), 2.0);
        assert_eq!(tick_step(1.0, 8.0), 0.2);
        assert_eq!(tick_step(700.0, 6.0), 200.0);
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(400.0, 200.0), "400");
    }
}
