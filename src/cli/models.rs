//! `splitflow models`: the bundled models and their model-card figures.

use super::args::ModelsArgs;
use crate::separate::neural::{ModelSource, bundled_models};
use crate::separate::{DEFAULT_MODEL, SEPARATORS};

pub fn run(args: &ModelsArgs) -> i32 {
    let models = bundled_models();
    if args.json {
        for m in &models {
            let path = match &m.source {
                ModelSource::Builtin(_) => serde_json::Value::Null,
                ModelSource::Folder(dir) => serde_json::json!(dir),
            };
            let card = m.card().unwrap_or(serde_json::Value::Null);
            let default = m.name == DEFAULT_MODEL;
            println!(
                "{}",
                serde_json::json!({ "name": m.name, "default": default, "builtin": path.is_null(), "path": path, "card": card })
            );
        }
        return 0;
    }
    for m in &models {
        let default = if m.name == DEFAULT_MODEL { " (default)" } else { "" };
        println!("{}{default}  ({})", m.name, m.location());
        match m.card() {
            Some(card) => {
                if let Some(summary) = card.get("summary").and_then(|v| v.as_object()) {
                    for (k, v) in summary {
                        let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                        println!("  {k:<28} {v}");
                    }
                }
            }
            None => println!("  (no card.json)"),
        }
    }
    println!("built-in:");
    for (name, help) in SEPARATORS {
        println!("  {name:<10} {help}");
    }
    0
}
