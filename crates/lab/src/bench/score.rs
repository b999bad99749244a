//! AlgoPerf's benchmark score: performance profiles over workloads, integrated up to `τ_max = 4`
//! and normalised to `[0, 1]`.
//!
//! For submissions `s` and workloads `w` with times to target `t(s, w)` (`None`: never reached),
//! the ratio `r(s, w) = t(s, w) / min over s' of t(s', w)` (∞ when not reached); the profile
//! `ρ_s(τ)` is the fraction of workloads with `r(s, w) ≤ τ`; the score is
//! `B_s = 1/(τ_max - 1) · ∫₁^τ_max ρ_s(τ) dτ`, exact here since `ρ` is a step function: each
//! workload reached within `τ_max` adds `(τ_max - r)/(τ_max - 1)/|W|`.

/// The profile's upper end, as AlgoPerf's.
pub const TAU_MAX: f64 = 4.0;

/// Each submission's ratio to the fastest on every workload: `times[s][w]` in, `ratios[s][w]`
/// out (`f64::INFINITY` where `s` never reached `w`'s target, or nobody did).
pub fn ratios(times: &[Vec<Option<f64>>]) -> Vec<Vec<f64>> {
    let workloads = times.iter().map(Vec::len).max().unwrap_or(0);
    let best: Vec<Option<f64>> = (0..workloads)
        .map(|w| {
            times
                .iter()
                .filter_map(|t| t.get(w).copied().flatten())
                .filter(|x| x.is_finite() && *x > 0.0)
                .min_by(f64::total_cmp)
        })
        .collect();
    times
        .iter()
        .map(|t| {
            (0..workloads)
                .map(|w| match (t.get(w).copied().flatten(), best[w]) {
                    (Some(x), Some(b)) if x.is_finite() && x > 0.0 => x / b,
                    _ => f64::INFINITY,
                })
                .collect()
        })
        .collect()
}

/// The fraction of workloads with ratio at most `tau`.
pub fn profile(ratios: &[f64], tau: f64) -> f64 {
    if ratios.is_empty() {
        return 0.0;
    }
    ratios.iter().filter(|&&r| r <= tau).count() as f64 / ratios.len() as f64
}

/// The score `B = 1/(τ_max - 1) · ∫₁^τ_max ρ(τ) dτ` of one submission's ratios (0 with no
/// workload).
pub fn score(ratios: &[f64], tau_max: f64) -> f64 {
    if ratios.is_empty() || tau_max <= 1.0 {
        return 0.0;
    }
    // From +0 (an empty float sum is -0, which would print as `-0.000`).
    let sum = ratios.iter().filter(|&&r| r <= tau_max).fold(0.0, |s, &r| s + (tau_max - r.max(1.0)));
    sum / (tau_max - 1.0) / ratios.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_integrates_the_profile() {
        // Two submissions, three workloads: A fastest on two, B twice as slow there and the only
        // one to reach the third.
        let times = vec![vec![Some(100.0), Some(50.0), None], vec![Some(200.0), Some(50.0), Some(10.0)]];
        let r = ratios(&times);
        assert_eq!(r[0], [1.0, 1.0, f64::INFINITY]);
        assert_eq!(r[1], [2.0, 1.0, 1.0]);
        assert_eq!(
            (profile(&r[0], 1.0), profile(&r[1], 1.5), profile(&r[1], 2.0)),
            (2.0 / 3.0, 2.0 / 3.0, 1.0)
        );
        assert_eq!(score(&r[0], TAU_MAX), 2.0 / 3.0);
        assert!((score(&r[1], TAU_MAX) - (3.0 + 3.0 + 2.0) / 3.0 / 3.0).abs() < 1e-15);
        // The integral against a fine Riemann sum of the profile.
        let riemann = |r: &[f64]| -> f64 {
            let n = 300_000;
            (0..n).map(|i| profile(r, 1.0 + 3.0 * (i as f64 + 0.5) / n as f64)).sum::<f64>() / n as f64
        };
        for r in &r {
            assert!((score(r, TAU_MAX) - riemann(r)).abs() < 1e-4);
        }
        // Nobody reached a workload: infinite for all; a ratio past τ_max counts nothing.
        assert_eq!(ratios(&[vec![None], vec![None]]), vec![vec![f64::INFINITY]; 2]);
        assert_eq!(score(&[5.0, 1.0], TAU_MAX), 0.5);
        assert_eq!(score(&[], TAU_MAX), 0.0);
    }
}
