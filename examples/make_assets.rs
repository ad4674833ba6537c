//! Renders the demo assets: `cargo run --release --example make_assets [-- OUT_DIR]`.
//! Writes mixture.wav, drums.wav and harmonic.wav (7 s, 22.05 kHz, stereo, 16-bit).

use std::path::PathBuf;

use splitflow::audio::{AtomicAudioWriter, OutputSpec, SampleFormat};

fn main() -> splitflow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "assets/demo".into()));
    let song = splitflow::demo::render(22_050, 7.0);
    let spec = OutputSpec {
        sample_rate: song.rate,
        channels: 2,
        format: SampleFormat::Int(16),
    };
    for (name, audio) in [
        ("mixture", song.mixture()),
        ("drums", song.drums.clone()),
        ("harmonic", song.harmonic.clone()),
    ] {
        let path = dir.join(format!("{name}.wav"));
        let mut w = AtomicAudioWriter::create(&path, spec)?;
        w.write_f32(&audio)?;
        w.finish(true)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
