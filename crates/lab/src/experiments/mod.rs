//! The documents' experiments, one module each, owning its data, model, runs, comparison and
//! figure, and its command line (`Args`, `run_cli`). Each example is a thin `main` over one of
//! them; the integration tests and the `reproduce` example call the same code.

pub mod airfoil;
pub mod char_lm;
pub mod linreg;
pub mod lr_decay;
pub mod mnist;
pub mod trace2d;
