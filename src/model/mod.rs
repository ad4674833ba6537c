//! Pretrained neural networks run with [candle](https://github.com/huggingface/candle), used by
//! the model-based metrics in [`crate::metrics`]. CPU by default; the `cuda` and `metal` cargo
//! features enable candle's GPU back ends (pass the device to the loaders).

pub mod crepe;
