//! The documents' linear regression: see `taper_lab::experiments::linreg`.
//!
//! `cargo run --release --example linear_regression`

use clap::Parser;
use taper_lab::experiments::linreg::{run_cli, Args};

fn main() {
    taper_lab::cli::main(Args::parse(), |args| {
        let r = run_cli(&args)?;
        println!("{:<55} {:>9} {:>9} {:>10}", "optimizer", "b", "w", "loss");
        for (spec, f) in &r.fits {
            let loss = f.losses.last().copied().unwrap_or(f64::NAN);
            println!("{spec:<55} {:>9.5} {:>9.5} {loss:>10.6}", f.b, f.w);
        }
        println!("{:<55} {:>9.5} {:>9.5}", "closed form (least squares)", r.closed_form.0, r.closed_form.1);
        Ok(())
    });
}
