//! Statistics for comparing a canary with its primary, pure and without I/O:
//! the normal distribution ([`normal`]), the Mann-Whitney U test with effect sizes
//! ([`mann_whitney`]), intervals for proportions ([`proportions`]) and the judgement built on
//! them with its minimum-sample guard ([`judge`]). docs/analysis.md measures how well the
//! judgement performs.
//!
//! The module uses nothing else of the crate (only `super::` paths): bench/judge compiles this
//! source on its own.

pub mod judge;
pub mod mann_whitney;
pub mod normal;
pub mod proportions;

pub use judge::{Counts, Judgement, Outcome, Settings, Test, compare_proportions, compare_samples};
