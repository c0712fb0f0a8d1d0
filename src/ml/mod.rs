//! The models and algorithms, on libtorch (tch).
//!
//! `tokens` (special tokens, padding) · `rng` (counter-based seeded streams)
//! · `autocast` (mixed precision: bf16 products, float32 weights and outputs)
//! · `matmul` (linear layers and attention; the `portable` profile's own
//! matrix product) · `transformer` (the shared trunk, KV cache, deterministic init) ·
//! `past` (keys and values read so far, for either trunk) · `policy`
//! (tandem's own or a pretrained model: log-probs, sampling, exact KL) · `preference` (pairwise PM) ·
//! `loss` (IPO, DPO, SLiC, Bo2) · `adam` (optimizer with savable state) ·
//! `exact_sqrt` (a square root that is the same on every CPU) ·
//! `data` (preference pairs on disk) · `sampler` (offline, online, replay
//! orders) · `train` (one step of SFT, PM and preference training) · `eval`
//! (KL, win rate, classifier accuracy, winner log-prob, with uncertainty).
pub mod adam;
pub mod autocast;
pub mod avx512_product;
pub mod data;
pub mod eval;
pub mod exact_sqrt;
pub mod hf;
pub mod loss;
pub mod matmul;
pub mod past;
pub mod policy;
pub mod preference;
pub mod rng;
pub mod sampler;
pub mod tokens;
pub mod train;
pub mod transformer;
