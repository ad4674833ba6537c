//! `splitflow report` end to end: one self-contained page whose players link to the files,
//! whose pictures are PNGs, and whose scores are those of `splitflow score`.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use base64::Engine;
use common::write_wav;

fn splitflow() -> Command {
    Command::cargo_bin("splitflow").unwrap()
}

/// Values of attribute `attr` of every `<tag ...>` in `html`.
fn attributes(html: &str, tag: &str, attr: &str) -> Vec<String> {
    let open = format!("<{tag} ");
    let key = format!("{attr}=\"");
    html.split(&open)
        .skip(1)
        .filter_map(|rest| {
            let el = &rest[..rest.find('>')?];
            let start = el.find(&key)? + key.len();
            Some(el[start..start + el[start..].find('"')?].to_string())
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn report_links_pictures_and_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (mix, est, refs) = (t.join("mix"), t.join("est"), t.join("ref"));
    for d in [&mix, &refs.join("song"), &refs.join("other two"), &est.join("orphan")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let song = splitflow::demo::render(22_050, 3.0);
    let other = splitflow::demo::render(16_000, 2.0);
    write_wav(&mix.join("song.wav"), &song.mixture(), 22_050, 16, false);
    write_wav(&mix.join("other two.wav"), &other.mixture(), 16_000, 24, false);
    write_wav(&refs.join("song/drums.wav"), &song.drums, 22_050, 16, false);
    write_wav(&refs.join("song/no_drums.wav"), &song.harmonic, 22_050, 16, false);
    write_wav(&refs.join("other two/drums.wav"), &other.drums, 16_000, 24, false);
    // An estimate whose track has no mixture: reported, the rest still written.
    write_wav(&est.join("orphan/drums.wav"), &other.drums, 16_000, 16, false);
    let run = splitflow()
        .args([
            "separate",
            "--model",
            "hpss",
            "-q",
            "drums",
            "--residual",
            "--quiet",
            "-o",
        ])
        .arg(&est)
        .arg(mix.join("song.wav"))
        .arg(mix.join("other two.wav"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let page = t.join("pages/sub/report.html");
    let run = splitflow()
        .args(["report", "--mixtures"])
        .arg(&mix)
        .arg("--estimates")
        .arg(&est)
        .arg("--references")
        .arg(&refs)
        .arg("-o")
        .arg(&page)
        .args(["--title", "<b>demo</b> & co"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("track orphan: no mixture under"), "{err}");
    assert!(err.contains("3 tracks, 5 estimates, 3 scored"), "{err}");
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained, escaped.
    assert!(
        html.contains("<title>&lt;b&gt;demo&lt;&#x2f;b&gt; &amp; co</title>"),
        "title not escaped"
    );
    for outside in ["http://", "https://", "<script", "<link", "<iframe"] {
        assert!(!html.contains(outside), "the page reaches outside: {outside}");
    }
    // Players: 2 mixtures, 5 estimates, 3 references, each linking to its file.
    let srcs = attributes(&html, "audio", "src");
    assert_eq!(srcs.len(), 10, "{srcs:?}");
    let base = page.parent().unwrap();
    let linked: Vec<PathBuf> = srcs
        .iter()
        .map(|s| base.join(percent_decode(s)).canonicalize().unwrap())
        .collect();
    for want in [
        mix.join("song.wav"),
        mix.join("other two.wav"),
        est.join("song/drums.wav"),
        est.join("song/no_drums.wav"),
        est.join("other two/no_drums.wav"),
        refs.join("song/no_drums.wav"),
        est.join("orphan/drums.wav"),
    ] {
        assert!(
            linked.contains(&want.canonicalize().unwrap()),
            "{} not linked",
            want.display()
        );
    }
    assert!(srcs.iter().any(|s| s.contains("other%20two")), "{srcs:?}");
    // Pictures: one PNG per player, 900 x 120.
    let pictures = attributes(&html, "img", "src");
    assert_eq!(pictures.len(), srcs.len());
    for p in &pictures {
        let data = p.strip_prefix("data:image/png;base64,").expect("a PNG data URI");
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
        let info = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (900, 120));
    }

    // The scores are those of `splitflow score` on the same folders.
    let score = splitflow()
        .args(["score", "--skip-missing", "--references"])
        .arg(&refs)
        .arg("--estimates")
        .arg(&est)
        .arg("--mixtures")
        .arg(&mix)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&score.stdout).into_owned();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("median") && !l.starts_with("mean"))
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in rows {
        let (track, source, values) = (row[0].rsplit_once('/').unwrap().0, row[1], &row[2..]);
        let section = html
            .split("<h2 ")
            .find(|s| s.contains(&format!(">{track}</h2>")))
            .unwrap_or_else(|| panic!("no section for {track}"));
        let cells: String = values.iter().map(|v| format!("<td>{v}</td>")).collect();
        let want = format!("<tr><td>{source}</td>{cells}</tr>");
        assert!(section.contains(&want), "{track}: no row {want}");
    }
    assert!(html.contains("Summary over 3 tracks"));
    assert!(Path::new(&page).metadata().unwrap().len() < 2_000_000);
}

#[test]
fn report_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = splitflow()
        .args(["report", "--mixtures"])
        .arg(tmp.path().join("nope"))
        .arg("--estimates")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--mixtures"));
    let run = splitflow()
        .args(["report", "--mixtures"])
        .arg(tmp.path())
        .arg("--estimates")
        .arg(tmp.path())
        .arg("-o")
        .arg(tmp.path().join("r.html"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no audio files"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!tmp.path().join("r.html").exists());
}
