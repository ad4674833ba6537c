//! What to separate: the query embedding shared by the three ways of asking.
//!
//! * **Labels** ([`QueryEncoder::labels`]): one learned vector per class of
//!   [`crate::data::LABELS`].
//! * **Query by example** ([`QueryEncoder::examples`]): a small conv net over a reference
//!   clip's band features ([`crate::dsp::bands::Bands::features`], `(B, 1, F, Tq)`, any
//!   `Tq >= 1`): four `conv 3×3 → 2×2 average pooling → GroupNorm → SiLU` stages (odd sizes
//!   zero-padded by one before pooling), a mean over frequency and
//!   time, and a linear layer into the same space. Trained jointly with the separator.
//! * **Free text** ([`resolve_query`]): a synonym table maps words to labels.
//!
//! Both embeddings are L2-normalised, so a label vector and a clip vector live on the same unit
//! sphere and the separator's FiLM layers see inputs of the same scale whichever was used.

use anyhow::{bail, ensure};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use crate::Result;
use crate::data::LABELS;
use crate::model::conv::GemmConv2d;
use crate::model::norm::Norm;

/// Channels of the clip encoder's four stages.
const CLIP_CHANNELS: [usize; 4] = [16, 32, 64, 128];
/// GroupNorm groups of the clip encoder.
const CLIP_GROUPS: usize = 8;

/// Rows of `x` (`(B, Q)`) scaled to unit L2 norm.
fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

/// Label table and clip encoder (tensor paths `labels`, `clip.conv{i}`, `clip.norm{i}`,
/// `clip.proj` under the builder given to [`QueryEncoder::new`]).
#[derive(Debug)]
pub struct QueryEncoder {
    /// `(n_labels, Q)`, unnormalised.
    labels: Tensor,
    convs: Vec<(GemmConv2d, Norm)>,
    proj: Linear,
    dim: usize,
}

impl QueryEncoder {
    /// `n_labels` learned label vectors and the clip encoder, both into `dim` dimensions.
    pub fn new(n_labels: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        ensure!(
            n_labels >= 1 && dim >= 1,
            "query needs at least one label and one dimension"
        );
        let labels = vb.get_with_hints(
            (n_labels, dim),
            "labels",
            candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 },
        )?;
        let clip = vb.pp("clip");
        let mut convs = Vec::new();
        let mut c_in = 1;
        for (i, &c) in CLIP_CHANNELS.iter().enumerate() {
            let conv = GemmConv2d::new(c_in, c, 3, 1, clip.pp(format!("conv{i}")))?;
            let norm = Norm::new(CLIP_GROUPS, c, clip.pp(format!("norm{i}")))?;
            convs.push((conv, norm));
            c_in = c;
        }
        let proj = candle_nn::linear(c_in, dim, clip.pp("proj"))?;
        Ok(Self {
            labels,
            convs,
            proj,
            dim,
        })
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Unit-norm label embeddings `(labels.len(), Q)` on `device`.
    pub fn labels(&self, labels: &[usize], device: &Device) -> Result<Tensor> {
        let n = self.labels.dim(0)?;
        for &l in labels {
            ensure!(l < n, "label id {l} out of range: the model knows {n} labels");
        }
        let ids: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let ids = Tensor::from_vec(ids, labels.len(), device)?;
        l2_normalise(&self.labels.to_device(device)?.index_select(&ids, 0)?)
    }

    /// Unit-norm embeddings `(B, Q)` of reference clips given as band features `(B, 1, F, Tq)`.
    pub fn examples(&self, clip_features: &Tensor) -> Result<Tensor> {
        let (_, c, _, tq) = clip_features.dims4()?;
        ensure!(
            c == 1 && tq >= 1,
            "clip features must be (B, 1, F, Tq >= 1), got {:?}",
            clip_features.dims()
        );
        let mut x = clip_features.to_dtype(DType::F32)?;
        for (conv, norm) in &self.convs {
            let x1 = conv.forward(&x)?;
            let (_, _, h, w) = x1.dims4()?;
            let x1 = x1
                .pad_with_zeros(2, 0, h % 2)?
                .pad_with_zeros(3, 0, w % 2)?
                .avg_pool2d(2)?;
            x = norm.forward(&x1, None, true)?;
        }
        let pooled = x.mean(D::Minus1)?.mean(D::Minus1)?;
        l2_normalise(&self.proj.forward(&pooled)?)
    }
}

/// Words (lower case, singular) mapped to labels of [`LABELS`]. Label names map to themselves
/// without being listed.
const SYNONYMS: &[(&str, &str)] = &[
    // speech
    ("voice", "speech"),
    ("vocal", "speech"),
    ("vocals", "speech"),
    ("talking", "speech"),
    ("talk", "speech"),
    ("speaker", "speech"),
    ("speaking", "speech"),
    ("dialogue", "speech"),
    ("dialog", "speech"),
    ("narration", "speech"),
    ("narrator", "speech"),
    ("conversation", "speech"),
    ("spoken", "speech"),
    ("singer", "speech"),
    ("singing", "speech"),
    ("podcast", "speech"),
    // music
    ("song", "music"),
    ("tune", "music"),
    ("melody", "music"),
    ("instrumental", "music"),
    ("accompaniment", "music"),
    ("soundtrack", "music"),
    // drums
    ("drum", "drums"),
    ("percussion", "drums"),
    ("beat", "drums"),
    ("snare", "drums"),
    ("kick", "drums"),
    ("hihat", "drums"),
    ("hi-hat", "drums"),
    ("cymbal", "drums"),
    // bass
    ("bassline", "bass"),
    ("bass guitar", "bass"),
    ("sub bass", "bass"),
    // piano
    ("keys", "piano"),
    ("keyboard", "piano"),
    ("grand piano", "piano"),
    ("pianoforte", "piano"),
    // guitar
    ("acoustic guitar", "guitar"),
    ("electric guitar", "guitar"),
    // strings
    ("string", "strings"),
    ("violin", "strings"),
    ("viola", "strings"),
    ("cello", "strings"),
    ("fiddle", "strings"),
    ("string section", "strings"),
    // winds (instruments)
    ("woodwind", "winds"),
    ("brass", "winds"),
    ("flute", "winds"),
    ("clarinet", "winds"),
    ("oboe", "winds"),
    ("bassoon", "winds"),
    ("saxophone", "winds"),
    ("sax", "winds"),
    ("trumpet", "winds"),
    ("trombone", "winds"),
    ("horn", "winds"),
    // water
    ("rain", "water"),
    ("river", "water"),
    ("stream", "water"),
    ("ocean", "water"),
    ("sea", "water"),
    ("wave", "water"),
    ("waterfall", "water"),
    ("splash", "water"),
    ("drip", "water"),
    // wind (weather)
    ("breeze", "wind"),
    ("gust", "wind"),
    // engine
    ("car", "engine"),
    ("motor", "engine"),
    ("traffic", "engine"),
    ("vehicle", "engine"),
    ("truck", "engine"),
    ("motorcycle", "engine"),
    ("airplane", "engine"),
    ("plane", "engine"),
    ("machine", "engine"),
    // animal
    ("dog", "animal"),
    ("cat", "animal"),
    ("bird", "animal"),
    ("birdsong", "animal"),
    ("bark", "animal"),
    ("barking", "animal"),
    ("chirp", "animal"),
    ("cow", "animal"),
    ("horse", "animal"),
    ("frog", "animal"),
    ("insect", "animal"),
];

/// The label id of `word` (lower case, whitespace-normalised) if it is a label or a synonym.
fn lookup(word: &str) -> Option<usize> {
    let name = SYNONYMS.iter().find(|(w, _)| *w == word).map_or(word, |(_, l)| *l);
    LABELS.iter().position(|l| *l == name)
}

/// The label id of a free-text query: a label name or a synonym (case-insensitive, extra
/// whitespace ignored), trying the text as given first and then English plural forms
/// (`-s`, `-es`, `-ies`), so `"Winds"` is the instrument label and `"Dogs"` an animal.
/// The error names the text and lists every label.
pub fn resolve_query(text: &str) -> Result<usize> {
    let norm = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mut candidates = vec![norm.clone()];
    if let Some(stem) = norm.strip_suffix("ies") {
        candidates.push(format!("{stem}y"));
    }
    if let Some(stem) = norm.strip_suffix("es") {
        candidates.push(stem.to_string());
    }
    if let Some(stem) = norm.strip_suffix('s') {
        candidates.push(stem.to_string());
    }
    if let Some(id) = candidates.iter().find_map(|c| lookup(c)) {
        return Ok(id);
    }
    bail!(
        "query \"{text}\" matches no sound class; use one of: {} (or a synonym such as \"voice\", \"rain\", \"violin\")",
        LABELS.join(", ")
    )
}
