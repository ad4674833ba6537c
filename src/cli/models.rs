//! `splitflow models`: the bundled models and their model-card figures.

use super::args::ModelsArgs;
use crate::separate::neural::bundled_models;
use crate::separate::{DEFAULT_MODEL, SEPARATORS};

pub fn run(args: &ModelsArgs) -> i32 {
    let models = bundled_models();
    if args.json {
        for (name, dir) in &models {
            let card = std::fs::read_to_string(dir.join("card.json")).unwrap_or_else(|_| "{}".into());
            let card: serde_json::Value = serde_json::from_str(&card).unwrap_or(serde_json::Value::Null);
            println!("{}", serde_json::json!({ "name": name, "path": dir, "card": card }));
        }
        return 0;
    }
    if models.is_empty() {
        println!(
            "no bundled neural models (looked in {})",
            crate::separate::neural::models_dir().display()
        );
    }
    for (name, dir) in &models {
        let default = if name == DEFAULT_MODEL { " (default)" } else { "" };
        println!("{name}{default}  {}", dir.display());
        match std::fs::read_to_string(dir.join("card.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        {
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
