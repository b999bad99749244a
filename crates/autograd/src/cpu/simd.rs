//! Branch-free math for the element-wise kernels, written so that a loop over a slice becomes
//! vector code, and [`dispatch!`], which compiles such a loop for the widest vector unit the CPU
//! has (AVX-512, AVX2 + FMA, or baseline SSE2), picked at run time.
//!
//! f32 takes polynomial approximations as PyTorch's vectorized CPU kernels do (Cephes' `expf`
//! and Abramowitz & Stegun 7.1.26 for `erf`, the formula of ATen's `Vectorized<float>::erf`);
//! f64 keeps libm's correctly rounded functions, so gradient checks in f64 stay exact.

use super::Float;

/// Runs `$body` (an expression) compiled for AVX-512F, for AVX2 + FMA, or for the baseline,
/// whichever is the widest the CPU has. The functions `$body` calls must be `#[inline(always)]`
/// for their loops to take the wider instructions.
macro_rules! dispatch {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            #[inline]
            unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2,fma")]
            #[inline]
            unsafe fn mid<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[inline(always)]
            fn base<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // One closure per variant (each is inlined into its own), made outside the `unsafe`
            // blocks so that the body gets no unsafe context.
            if std::arch::is_x86_feature_detected!("avx512f") {
                let body = || $body;
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { wide(body) }
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let body = || $body;
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                unsafe { mid(body) }
            } else {
                base(|| $body)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body
        }
    }};
}
pub(crate) use dispatch;

/// `eˣ` in f32 (Cephes' `expf`: `x = n·ln 2 + r`, a degree-6 polynomial in `r`, scaled by `2ⁿ`
/// through the exponent bits): within 2 ulp of the true value on `[-87.3, 88.7]`, 0 below
/// (`-∞` included), `+∞` above, NaN for NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer in vector registers.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.7);
    let k = xc * LOG2E + ROUND;
    let n = k - ROUND;
    // `k`'s low mantissa bits hold `n` as an integer: read it there (a float-to-int `as` would
    // not vectorize, as Rust's cast saturates).
    let ni = (k.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = xc - n * C1 - n * C2;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = (p * r * r + r + 1.0) * f32::from_bits(((ni + 127) << 23) as u32);
    // Below the clamp the true value underflows: 0 (as `exp(-inf)`), keeping NaN as NaN.
    if x < -87.3 {
        0.0
    } else {
        y
    }
}

/// `erf(x)` in f32, branch-free: below 1 in magnitude Cephes' odd polynomial `x·P(x²)`
/// (relative error about 10⁻⁷), above it Abramowitz & Stegun 7.1.26, `1 - t·Q(t)·e^(-x²)` with
/// `t = 1/(1 + p|x|)` (absolute error below 1.5·10⁻⁷; ATen's vectorized f32 `erf` uses it
/// everywhere), odd in `x`. `e2` must be `e^(-x²)` (callers that have it pass it in).
#[inline(always)]
pub(crate) fn erf_f32_with(x: f32, e2: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152_1, 1.061_405_4];
    const C: [f32; 7] = [
        std::f32::consts::FRAC_2_SQRT_PI,
        -0.376_126_27,
        0.112_835_85,
        -2.685_381_2e-2,
        5.188_327_7e-3,
        -8.010_193_6e-4,
        7.853_861_4e-5,
    ];
    let ax = x.abs();
    let z = x * x;
    let small = x * ((((((C[6] * z + C[5]) * z + C[4]) * z + C[3]) * z + C[2]) * z + C[1]) * z + C[0]);
    let t = 1.0 / (1.0 + P * ax);
    let poly = (((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0];
    let r = 1.0 - t * poly * e2;
    let large = if x < 0.0 { -r } else { r };
    if ax < 1.0 {
        small
    } else {
        large
    }
}

/// Lanes of the reductions below: independent partial sums that vector code keeps side by side
/// (a plain float sum must add in order, so it cannot vectorize).
const LANES: usize = 16;

/// `Σᵢ f(aᵢ, bᵢ)` over equally long slices, in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum_zip<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    let mut s = T::ZERO;
    for (&x, &y) in ra.iter().zip(rb) {
        s += f(x, y);
    }
    for a in acc {
        s += a;
    }
    s
}

/// `Σᵢ f(aᵢ)`, in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum_map<T: Float>(a: &[T], f: impl Fn(T) -> T) -> T {
    sum_zip(a, a, |x, _| f(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_within_its_bound_and_odd() {
        for i in 0..=40_000 {
            let x = -6.0 + 12.0 * i as f32 / 40_000.0;
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            let got = erf_f32_with(x, exp_f32(-x * x)) as f64;
            let bound = if x.abs() < 1.0 { 2e-7 * want.abs() } else { 2.5e-7 };
            assert!((got - want).abs() <= bound, "erf({x}): {got} vs {want}");
            assert_eq!(erf_f32_with(-x, exp_f32(-x * x)), -erf_f32_with(x, exp_f32(-x * x)));
        }
    }

    #[test]
    fn lane_reductions_match_plain_ones() {
        for n in [1, 5, 16, 17, 100] {
            let a: Vec<f64> = (0..n).map(|i| ((i * 37 % 23) as f64 - 11.0) / 3.0).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((sum_zip(&a, &b, |x, y| x * y) - dot).abs() < 1e-12);
            assert!((sum_map(&a, |x| x * x) - a.iter().map(|x| x * x).sum::<f64>()).abs() < 1e-12);
        }
    }

    #[test]
    fn dispatched_loops_compute_what_the_plain_loop_does() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 50.0).collect();
        let plain: Vec<f32> = x.iter().map(|&v| exp_f32(v)).collect();
        let wide: Vec<f32> = dispatch!(x.iter().map(|&v| exp_f32(v)).collect::<Vec<f32>>());
        assert_eq!(plain, wide);
    }
}
