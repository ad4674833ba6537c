//! The training corpus: fetching the allowed Debian packages ([`fetch`]) and building labelled
//! mono 16-bit clips with a manifest and disjoint train / valid / test splits ([`build`]).
//!
//! Pipeline: [`sources`] (the package table) → [`extract`] (`.deb` and zip members) →
//! [`rules`] (label and split group per file) → [`clip`] (mono, trim, cut) → [`manifest`];
//! [`render`] builds the rendered instrument stems; [`part`] holds what a package part and a
//! render set share (options, reports, done-markers), below both [`build`] and [`render`].

pub mod augment;
pub mod build;
pub mod clip;
pub mod extract;
pub mod fetch;
pub mod manifest;
pub mod part;
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
