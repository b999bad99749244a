//! `taper bench` (issue 27): an AlgoPerf-style score for an optimizer on one CPU in minutes.
//!
//! * [`suite`]: the workloads (`linreg`, `airfoil`, `mnist_mlp`, `mnist_convnet`, `char_gpt`,
//!   `rosenbrock`, each with held-out variants), their frozen targets and budgets, the rulesets;
//! * [`targets`]: the target setting from the four baselines (`taper bench --set-targets`);
//! * [`space`]: search spaces in the spec language, sampled with scrambled Sobol points;
//! * [`spaces`]: each optimizer's default search space;
//! * [`run`]: a run's trials as sweep cells (resumable, sharded) and its times to target;
//! * [`score`]: AlgoPerf's performance-profile score;
//! * [`leaderboard`]: the committed leaderboard and a new run's place on it;
//! * [`cli`]: `taper bench` and `taper bench-leaderboard`.
//!
//! The rules are in `docs/BENCH.md`.

pub mod cli;
pub mod leaderboard;
pub mod run;
pub mod score;
pub mod space;
pub mod spaces;
pub mod suite;
pub mod targets;
