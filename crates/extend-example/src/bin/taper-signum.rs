//! The `taper` command with Signum registered: every subcommand of Taper's own, with `signum`
//! named in specs and search spaces. Score it against the committed leaderboard:
//!
//! ```text
//! cargo run --release -p taper-extend-example --bin taper-signum -- bench --optimizer signum
//! ```
//!
//! (`signum` alone is its default search space, the learning rate log-uniform over
//! `[d/30, 30·d]` around its default `d`; give your own with
//! `--optimizer "signum:lr=loguniform(1e-4,1e-2),beta=uniform(0.8,0.99)"`.)

fn main() {
    if let Err(e) = taper_extend_example::register() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    taper_lab::sweep::cli::main();
}
