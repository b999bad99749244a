//! Taper's optimizers.
