//! d2l chapter 7's airfoil runs: see `taper_lab::experiments::airfoil`.
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example airfoil
//! ```

use clap::Parser;
use taper_lab::experiments::airfoil::{format_line, run_cli, Args};

fn main() {
    taper_lab::cli::main(Args::parse(), |args| {
        for r in run_cli(&args)? {
            println!("{} {} ({})", r.section, r.label, r.spec);
            println!("{}", format_line(&r.outcome));
        }
        Ok(())
    });
}
