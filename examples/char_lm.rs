//! A character-level GPT on a text file: see `taper::experiments::char_lm`.
//!
//! `TAPER_DATA_DIR=../shared/data cargo run --release --example char_lm`

use clap::Parser;
use taper::experiments::char_lm::{run_cli, Args};

fn main() {
    taper::cli::main(Args::parse(), |args| run_cli(&args, true).map(|_| ()));
}
