//! The documents' experiments as library code: each example is a thin command line over one of
//! these modules, and the integration tests and the `reproduce` example call the same code.

pub mod airfoil;
pub mod linreg;
pub mod lr_decay;
pub mod mnist;
pub mod trace2d;
