//! Training configs: every shipped config parses and validates; mistakes are reported with the
//! file name.

use splitflow::train::config::TrainConfig;

#[test]
fn every_shipped_config_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let cfg = TrainConfig::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            cfg.model.validate().unwrap();
            assert_eq!(cfg.model.n_labels, splitflow::data::LABELS.len());
            n += 1;
        }
    }
    assert!(n >= 3, "configs/ should hold base, cpu-small and tiny");
}

#[test]
fn bad_configs_name_the_file_and_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown.json", r#"{"batch_sise": 4}"#, "batch_sise"),
        ("zero.json", r#"{"batch_size": 0}"#, "batch_size"),
        ("sampler.json", r#"{"valid_sampler": "leapfrog:3"}"#, "valid_sampler"),
        ("broken.json", "{", "not a valid training config"),
        (
            "absent.json",
            r#"{"data": {"absent_p": 0.2}, "objective": {"waveform_sisdr": 0.02}}"#,
            "absent_p",
        ),
        (
            "pairs.json",
            r#"{"data": {"pair_queries": true}, "batch_size": 7}"#,
            "even batch_size",
        ),
    ];
    for (name, text, needle) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", TrainConfig::load(&path).unwrap_err());
        assert!(err.contains(name), "{err}");
        assert!(err.contains(needle), "{err}");
    }
}
