//! `taper`: learning-rate sweeps over test problems and seeds, and reports that compare
//! optimizers fairly (`taper sweep`, `taper report`, `taper list`; see `docs/SWEEPS.md`).

fn main() {
    taper_lab::sweep::cli::main();
}
