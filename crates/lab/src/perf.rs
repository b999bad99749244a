//! Measuring against the limit: the machine's peak matrix-product rate, measured on the spot, and
//! a transformer step's model FLOPs (nanoGPT's `estimate_mfu` count), so that a step's achieved
//! GFLOP/s is reported as a share of what this machine can do now.

use std::time::Instant;

use anyhow::Result;

use crate::{DType, Device, SeededRng};

/// A measured peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// The best rate of one `n × n` f32 product, in GFLOP/s (`2n³` FLOPs over its time).
    pub gflops: f64,
    /// `n`.
    pub n: usize,
    /// The threads the products ran on.
    pub threads: usize,
}

impl std::fmt::Display for Peak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} GFLOP/s (the best {n}x{n} f32 product on {} threads, measured now)",
            self.gflops,
            self.threads,
            n = self.n
        )
    }
}

/// The peak of this machine: the best rate of repeated `n × n` f32 products on `device` (all
/// threads on the CPU) over about `seconds` (after one untimed product). The best, not the mean,
/// of the repetitions: a product another process slowed is not what the machine can do.
pub fn measure_peak(device: &Device, n: usize, seconds: f64) -> Result<Peak> {
    if n == 0 || !(seconds.is_finite() && seconds >= 0.0) {
        anyhow::bail!("a peak measurement needs n >= 1 and a finite, non-negative duration");
    }
    let mut rng = SeededRng::new(0);
    let a = rng.normal((n, n), 0.0, 1.0, DType::F32, device)?;
    let b = rng.normal((n, n), 0.0, 1.0, DType::F32, device)?;
    a.matmul(&b)?;
    device.synchronize()?;
    let flop = 2.0 * (n as f64).powi(3);
    let start = Instant::now();
    let mut best = 0.0f64;
    loop {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        device.synchronize()?;
        best = best.max(flop / t.elapsed().as_secs_f64().max(1e-12));
        drop(c);
        if start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    Ok(Peak { gflops: best / 1e9, n, threads: crate::tensor::parallel::threads() })
}

/// The FLOPs of one training step (forward and backward) of a GPT, as nanoGPT's `estimate_mfu`
/// counts them: `(6N + 12·L·H·Q·T)` per token, `N` the parameters but the position embedding
/// (`non_embedding`), `Q = C/H`, `T` the context, over `tokens` tokens of the step.
pub fn gpt_step_flops(
    non_embedding_params: usize,
    n_layer: usize,
    n_embd: usize,
    block_size: usize,
    tokens: usize,
) -> f64 {
    let per_token = 6.0 * non_embedding_params as f64 + 12.0 * (n_layer * n_embd * block_size) as f64;
    per_token * tokens as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanogpts_count_and_a_measured_peak() {
        // nanoGPT's count for its shakespeare_char CPU recipe (4 layers, width 128, context 64,
        // 0.80M non-embedding parameters with a vocabulary of 65), batch 12: about 3.9 GFLOP.
        let f = gpt_step_flops(800_000, 4, 128, 64, 12 * 64);
        assert!((f - (6.0 * 800_000.0 + 12.0 * 4.0 * 128.0 * 64.0) * 768.0).abs() < 1.0);
        assert!((3.9e9..4.1e9).contains(&f), "{f}");
        let p = measure_peak(&Device::Cpu, 64, 0.0).unwrap();
        assert!(p.gflops > 0.0 && p.gflops.is_finite() && p.n == 64 && p.threads >= 1);
        assert!(measure_peak(&Device::Cpu, 0, 1.0).is_err());
    }
}
