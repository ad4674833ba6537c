//! The training corpus: fetching the allowed Debian packages ([`fetch`]) and building labelled
//! mono 16-bit clips with a manifest and disjoint train / valid / test splits ([`build`]).
//!
//! Pipeline: [`sources`] (the package table) → [`extract`] (`.deb` and zip members) →
//! [`rules`] (label and split group per file) → [`clip`] (mono, trim, cut) → [`manifest`].

pub mod augment;
pub mod build;
pub mod clip;
pub mod extract;
pub mod fetch;
pub mod manifest;
pub mod render;
pub mod rules;
pub mod sampler;
pub mod sources;

pub use build::{BuildOptions, BuildReport, PackageReport, build};
pub use manifest::ClipRow;
pub use sources::{PACKAGES, Package};

/// The label vocabulary the bundled model must know.
pub const LABELS: &[&str] = &[
    "speech", "music", "drums", "bass", "piano", "guitar", "strings", "winds", "water", "wind", "engine", "animal",
];
