//! `taper bench`'s pieces (issue 27): search spaces sampled quasirandomly, as AlgoPerf's external
//! tuning ruleset samples its trials. The benchmark itself (the suite, its targets and the score)
//! is built on these.

pub mod score;
pub mod space;
