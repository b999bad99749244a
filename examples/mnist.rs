//! The documents' MNIST ConvNet (or an MLP) with any optimizer: see `taper_lab::experiments::mnist`.
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example mnist -- --split test --train-limit 8000 --holdout 2000
//! ```

use clap::Parser;
use taper_lab::experiments::mnist::{run_cli, Args};

fn main() {
    taper_lab::cli::main(Args::parse(), |args| run_cli(&args, true).map(drop));
}
