//! A character-level GPT on a text file: see `taper_lab::experiments::char_lm`.
//!
//! `TAPER_DATA_DIR=../shared/data cargo run --release --example char_lm`

use clap::Parser;
use taper_lab::experiments::char_lm::{run_cli, Args};

fn main() {
    taper_lab::cli::main(Args::parse(), |args| run_cli(&args, true).map(|_| ()));
}
