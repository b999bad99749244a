//! d2l's 2-D optimization traces: see `taper_lab::experiments::trace2d`.
//!
//! ```text
//! cargo run --release --example trace_2d -- --optimizer "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true"
//! ```

use clap::Parser;
use taper_lab::experiments::trace2d::{run_cli, Args};

fn main() {
    taper_lab::cli::main(Args::parse(), |args| {
        let traces = run_cli(&args)?;
        for t in &traces {
            if traces.len() > 1 {
                println!("{}", t.spec);
            }
            for line in &t.lines {
                println!("{line}");
            }
        }
        Ok(())
    });
}
