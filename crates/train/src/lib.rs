//! Taper's training loop.
