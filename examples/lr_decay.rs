//! The effective learning rate of AdaGrad against RMSprop: see `taper_lab::experiments::lr_decay`.
//!
//! `cargo run --release --example lr_decay`

use clap::Parser;
use taper_lab::experiments::lr_decay::{run_cli, Args};

fn main() {
    taper_lab::cli::main(Args::parse(), |args| {
        let rates = run_cli(&args)?;
        let steps: Vec<usize> = [1, 10, 100, 1000].into_iter().filter(|&t| t <= args.steps).collect();
        print!("{:<52}", "mean effective lr at step");
        for t in &steps {
            print!(" {t:>11}");
        }
        println!();
        for r in &rates {
            print!("{:<52}", r.spec);
            for &t in &steps {
                print!(" {:>11.5}", r.mean_at(t));
            }
            println!();
        }
        Ok(())
    });
}
