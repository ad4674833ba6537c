//! Spectrograms of audio files, one row each, in one PNG on one colour scale (the pictures of
//! docs/model.md "Listen and look"): `cargo run --release --example spectrogram_grid -- OUT.png
//! [TITLE=]FILE...`. Each file is mixed to mono; a row is titled TITLE, or the file's folder
//! and name.

use std::path::{Path, PathBuf};

use splitflow::audio::AudioReader;
use splitflow::viz::write_spectrogram_grid;

fn mono(path: &Path) -> splitflow::Result<(Vec<f32>, u32)> {
    let mut reader = AudioReader::open(path)?;
    let info = reader.info().clone();
    let (mut mix, mut block) = (Vec::new(), vec![Vec::new(); info.channels]);
    loop {
        block.iter_mut().for_each(Vec::clear);
        if reader.read(&mut block, 65_536)? == 0 {
            break;
        }
        let k = 1.0 / info.channels.max(1) as f32;
        mix.extend((0..block[0].len()).map(|i| block.iter().map(|c| c[i]).sum::<f32>() * k));
    }
    Ok((mix, info.sample_rate))
}

fn main() -> splitflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, files)) = args.split_first() else {
        anyhow::bail!("usage: spectrogram_grid OUT.png [TITLE=]FILE...");
    };
    anyhow::ensure!(!files.is_empty(), "usage: spectrogram_grid OUT.png [TITLE=]FILE...");
    let mut rows = Vec::new();
    for f in files {
        let (title, path) = match f.split_once('=') {
            Some((t, p)) => (t.to_string(), PathBuf::from(p)),
            None => {
                let p = PathBuf::from(f);
                let name = p.iter().rev().take(2).collect::<Vec<_>>();
                let title = name
                    .iter()
                    .rev()
                    .map(|s| s.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                (title, p)
            }
        };
        let (x, rate) = mono(&path)?;
        rows.push((title, x, rate));
    }
    write_spectrogram_grid(Path::new(out), &rows)
}
