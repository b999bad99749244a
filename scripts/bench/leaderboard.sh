#!/bin/bash
# The leaderboard of docs/BENCH.md: the four baselines' search spaces and every built-in
# optimizer at its default search space, each run by `taper bench` under the external-tuning
# rules at the default trial count (5 trials x 3 studies) on every workload and every held-out
# variant, in 2 jobs of 1 thread; each then gathered into crates/lab/bench/leaderboard.json and the
# table of docs/BENCH.md. Resumable (each run is its own results directory) and cumulative:
# entries already in leaderboard.json stay unless rerun (`bench-leaderboard --merge`).
# TAPER=PATH runs another build of the command (a copy, so that rebuilding meanwhile changes
# nothing).
#
#   TAPER_DATA_DIR=../shared/data scripts/bench/leaderboard.sh            # every optimizer
#   TAPER_DATA_DIR=../shared/data scripts/bench/leaderboard.sh adam lion  # some (then gathered
#                                                                       # with those already run)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-out/bench-leaderboard}
if [ -z "${TAPER:-}" ]; then
  cargo build --release -p taper-lab --bin taper
fi
taper=${TAPER:-./target/release/taper}
baselines=(
  "adamw:lr=loguniform(1e-4,1e-1),weight_decay=loguniform(1e-4,1e-1)"
  "nadam:lr=loguniform(1e-4,1e-1),weight_decay=loguniform(1e-4,1e-1),decoupled_weight_decay=true"
  "sgd:lr=loguniform(1e-3,1),momentum=uniform(0.8,0.99),nesterov=true"
  "sgd:lr=loguniform(1e-3,1),momentum=uniform(0.8,0.99)"
)
if [ $# -gt 0 ]; then
  spaces=("$@")
else
  spaces=("${baselines[@]}")
  # Every optimizer with a default search space (`taper list` names them; the wrappers and
  # L-BFGS have none, see docs/BENCH.md).
  for name in $($taper list | sed -n '/^optimizers:/{n;p}' | tr -d ' ' | tr ',' ' '); do
    case $name in lbfgs|lookahead|sam) ;; *) spaces+=("$name") ;; esac
  done
fi
failed=()
for space in "${spaces[@]}"; do
  dir="$out/$(printf '%s' "$space" | tr -c 'A-Za-z0-9_\n' '_' | cut -c1-80)"
  echo "== $space -> $dir"
  # A run that fails is reported at the end; the others go on.
  if ! $taper bench --optimizer "$space" --all-variants --jobs 2 --threads 1 --out "$dir" --quiet; then
    failed+=("$space")
    continue
  fi
  # Gathered after each run, so that a long run cut short keeps what it finished.
  $taper bench-leaderboard --merge "$dir" --json crates/lab/bench/leaderboard.json --markdown docs/BENCH.md \
    --command "scripts/bench/leaderboard.sh"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed (rerun to finish them): ${failed[*]}" >&2
  exit 1
fi
