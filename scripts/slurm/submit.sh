#!/bin/bash
# Submits a sweep as a Slurm job array of N shards, then the report that merges them once every
# shard has finished:
#
#   scripts/slurm/submit.sh N OUT [taper sweep options]
#   scripts/slurm/submit.sh 4 /shared/sweeps/airfoil --problem airfoil \
#       --optimizer "adam:lr=logspace(1e-4,1,7)" --optimizer "rmsprop:lr=logspace(1e-4,1,7)" --seeds 3
#
# TAPER names the binary (default: `taper` on PATH, from `cargo install --path crates/lab`).
set -euo pipefail
n=${1:?usage: submit.sh N OUT [taper sweep options]}
out=${2:?usage: submit.sh N OUT [taper sweep options]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# Check the arguments once before queueing anything: a typo fails here, not in N jobs.
"${TAPER:-taper}" sweep "$@" --out "$out/shard-1" --dry-run
array=$(sbatch --parsable --array="1-$n" --chdir="$out" --export=ALL "$here/sweep.sbatch" "$out" "$@")
report=$(sbatch --parsable --dependency="afterok:$array" --chdir="$out" --export=ALL "$here/report.sbatch" "$out")
echo "array job $array ($n shards), report job $report: $out/report/REPORT.md when done"
