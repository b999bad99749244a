//! The arithmetic an update rule is written in, once, for both paths.
//!
//! An optimizer's per-parameter update is a generic function over [`Elem`]. Instantiated with a
//! scalar (`f32`, `f64`, which cannot fail) it is the body of the fused in-place CPU kernel, one
//! pass over memory; instantiated with a candle [`Tensor`] it is the composed path that runs on
//! every device. Both paths therefore compute the same formula, by construction.

use std::convert::Infallible;

use candle_core::Tensor;

/// Element-wise arithmetic on scalars or whole tensors.
pub trait Elem: Sized + Clone {
    /// The error type: [`Infallible`] for scalars.
    type Err;
    /// `self + o`
    fn add(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `self - o`
    fn sub(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `self · o`
    fn mul(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `self / o`
    fn div(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `mul · self + add` for scalar coefficients.
    fn affine(&self, mul: f64, add: f64) -> Result<Self, Self::Err>;
    /// `√self`
    fn sqrt(&self) -> Result<Self, Self::Err>;
    /// `self²`
    fn sqr(&self) -> Result<Self, Self::Err>;
    /// `max(self, o)`
    fn maximum(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `|self|`
    fn abs(&self) -> Result<Self, Self::Err>;
    /// `min(self, o)`
    fn minimum(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `sign(self)`: `1`, `-1`, or `0` at zero (and NaN), as `torch.sign`.
    fn sign(&self) -> Result<Self, Self::Err>;
    /// `e^self`
    fn exp(&self) -> Result<Self, Self::Err>;
    /// `ln self`
    fn ln(&self) -> Result<Self, Self::Err>;
    /// `self^k` for a scalar exponent.
    fn powf(&self, k: f64) -> Result<Self, Self::Err>;
    /// `∛self` of a non-negative value, to the last bit or two (PyTorch's `pow(1/3)` differs
    /// from it by the rounding of 1/3: a relative `|ln self|·2⁻⁵⁴`). On
    /// scalars pure arithmetic, so that the fused loop vectorizes: an estimate from the bits,
    /// then Halley's iterations.
    fn cbrt(&self) -> Result<Self, Self::Err>;
    /// `1` where `self > o`, else `0` (a mask in the element type).
    fn gt(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `1` where `self < o`, else `0`.
    fn lt(&self, o: &Self) -> Result<Self, Self::Err>;
    /// `-self` when `negate`, else `self`. On scalars a product with ±1, so that the fused loop
    /// has no data-independent branch or blend per element.
    fn negate_if(&self, negate: bool) -> Result<Self, Self::Err>;
    /// `on_true` where `self ≠ 0`, else `on_false` (`self` a mask from [`Elem::gt`] or
    /// [`Elem::lt`]): `torch.where`.
    fn select(&self, on_true: &Self, on_false: &Self) -> Result<Self, Self::Err>;

    /// The cautious update (C-Optim, rescaled as timm's `caution=True`): `self` where it agrees
    /// in sign with `g` (`self·g > 0`), else 0, times `1/mean(mask)` (at most 1000). A scalar
    /// takes that factor as `scale`, measured over the whole tensor beforehand; a tensor measures
    /// it itself and ignores `scale`.
    fn cautious(&self, g: &Self, scale: f64) -> Result<Self, Self::Err>;

    /// `self · k`
    #[inline(always)]
    fn scale(&self, k: f64) -> Result<Self, Self::Err> {
        self.affine(k, 0.0)
    }

    /// `self + k · o` (PyTorch's `add(o, alpha=k)`).
    #[inline(always)]
    fn add_scaled(&self, o: &Self, k: f64) -> Result<Self, Self::Err> {
        self.add(&o.scale(k)?)
    }
}

/// The cube root of a non-negative `x` in arithmetic alone: the exponent divided by 3 in the bit
/// pattern (Kahan's estimate, within 4 %), then Halley's iteration `y ← y·(y³ + 2x)/(2y³ + x)`,
/// which triples the correct digits each time (three of them); 0 stays 0. f32 has its own, below.
trait CbrtArith: Sized {
    fn cbrt_arith(self) -> Self;
}

macro_rules! cbrt_arith {
    ($t:ty, $magic:expr, $iterations:expr) => {
        impl CbrtArith for $t {
            #[inline(always)]
            fn cbrt_arith(self) -> $t {
                let x = self;
                let mut y = <$t>::from_bits(x.to_bits() / 3 + $magic);
                for _ in 0..$iterations {
                    let y3 = y * y * y;
                    y = y * (y3 + 2.0 * x) / (2.0 * y3 + x);
                }
                if x > 0.0 {
                    y
                } else {
                    x
                }
            }
        }
    };
}

cbrt_arith!(f64, 0x2a9f_7893_782d_a1ce, 3);

/// f32, without a division: the inverse cube root `w ≈ x^(-1/3)` from the bit pattern (within
/// 3.5 %) and two of its division-free Newton steps `w ← w·(4 − x·w³)/3` (within 1.1e-5), then
/// `y = x·w²` and one Newton step on the root, `y + (x − y³)·w²/3` (`w²` is `1/y²`), with the
/// residual `x − y³` as good as exact: `y·y` split into `y2 + e2` exactly by a fused multiply-add,
/// then `(x − y2·y) − e2·y` in two more, each rounding far below the last place of `x`. What is left is near 1e-9, below f32's half unit in
/// the last place, so the result is the true cube root's f32 but for rare near-ties (one unit
/// then). All on full f32 vectors (16 lanes in AVX-512, where the fused multiply-add is one
/// instruction), no branch: subnormals and values above `2^120` are scaled by `2^±24` first (and
/// the root by `2^∓8`); 0 (and any `x <= 0`) gives 0.
impl CbrtArith for f32 {
    #[inline(always)]
    fn cbrt_arith(self) -> f32 {
        // Into [2^-126, 2^120] (exactly, by powers of 2^24), so that neither the estimate nor y³
        // leaves f32's range; the root comes back by the cube root of the factor.
        // Constants chosen by comparisons (selects, not branches: the loop stays vectorized).
        let (tiny, huge) = (self < f32::MIN_POSITIVE, self > 1.329_228e36);
        let scale = if tiny { 16_777_216.0 } else { 1.0 };
        let scale = if huge { 1.0 / 16_777_216.0 } else { scale };
        let back = if tiny { 1.0 / 256.0 } else { 1.0 };
        let back = if huge { 256.0 } else { back };
        // 1 stands in for 0 (whose estimate would overflow to inf·0) and anything below.
        let positive = self > 0.0;
        let x = if positive { self * scale } else { 1.0 };
        // (4/3)·(127 − 0.045)·2^23, tuned for the smallest error over every mantissa.
        let mut w = f32::from_bits(0x54a2_1c00u32.wrapping_sub(x.to_bits() / 3));
        // As w·(4/3 − (x/3)·w³), one multiply-add and three products a step.
        let third = x * (1.0 / 3.0);
        for _ in 0..2 {
            w *= (-third).mul_add(w * w * w, 4.0 / 3.0);
        }
        let w2 = w * w;
        let y = x * w2;
        // x − y³ = (x − y2·y) − e2·y with y2 + e2 = y·y exactly; x − y2·y is about 1e-5·x, so
        // the multiply-adds' roundings are far below f32's last place of x.
        let y2 = y * y;
        let e2 = y.mul_add(y, -y2);
        let residual = (-e2).mul_add(y, (-y2).mul_add(y, x));
        let root = residual.mul_add(w2 * (1.0 / 3.0), y) * back;
        // 0 for 0 (and any x <= 0, which a sum of squares never is; NaN stays NaN).
        if positive {
            root
        } else {
            self * 0.0
        }
    }
}

macro_rules! scalar_elem {
    ($t:ty) => {
        impl Elem for $t {
            type Err = Infallible;
            #[inline(always)]
            fn add(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(self + o)
            }
            #[inline(always)]
            fn sub(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(self - o)
            }
            #[inline(always)]
            fn mul(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(self * o)
            }
            #[inline(always)]
            fn div(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(self / o)
            }
            #[inline(always)]
            fn affine(&self, mul: f64, add: f64) -> Result<Self, Infallible> {
                // The same rounding as candle's affine kernel: coefficients cast to the dtype.
                Ok(self * (mul as $t) + (add as $t))
            }
            #[inline(always)]
            fn scale(&self, k: f64) -> Result<Self, Infallible> {
                // A plain product (affine's `+ 0` would cost an add per element; it differs only
                // in the sign of a zero).
                Ok(self * (k as $t))
            }
            #[inline(always)]
            fn sqrt(&self) -> Result<Self, Infallible> {
                Ok(<$t>::sqrt(*self))
            }
            #[inline(always)]
            fn sqr(&self) -> Result<Self, Infallible> {
                Ok(self * self)
            }
            #[inline(always)]
            fn maximum(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(if *self >= *o { *self } else { *o })
            }
            #[inline(always)]
            fn abs(&self) -> Result<Self, Infallible> {
                Ok(<$t>::abs(*self))
            }
            #[inline(always)]
            fn minimum(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(if *self <= *o { *self } else { *o })
            }
            #[inline(always)]
            fn sign(&self) -> Result<Self, Infallible> {
                // Branch-free, as candle's kernel: 0 at 0 and NaN.
                Ok(<$t>::from(*self > 0.0) - <$t>::from(*self < 0.0))
            }
            #[inline(always)]
            fn exp(&self) -> Result<Self, Infallible> {
                Ok(<$t>::exp(*self))
            }
            #[inline(always)]
            fn ln(&self) -> Result<Self, Infallible> {
                Ok(<$t>::ln(*self))
            }
            #[inline(always)]
            fn powf(&self, k: f64) -> Result<Self, Infallible> {
                Ok(<$t>::powf(*self, k as $t))
            }
            #[inline(always)]
            fn cbrt(&self) -> Result<Self, Infallible> {
                Ok(CbrtArith::cbrt_arith(*self))
            }
            #[inline(always)]
            fn gt(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(<$t>::from(*self > *o))
            }
            #[inline(always)]
            fn lt(&self, o: &Self) -> Result<Self, Infallible> {
                Ok(<$t>::from(*self < *o))
            }
            #[inline(always)]
            fn negate_if(&self, negate: bool) -> Result<Self, Infallible> {
                Ok(*self * if negate { -1.0 } else { 1.0 })
            }
            #[inline(always)]
            fn select(&self, on_true: &Self, on_false: &Self) -> Result<Self, Infallible> {
                Ok(if *self != 0.0 { *on_true } else { *on_false })
            }
            #[inline(always)]
            fn cautious(&self, g: &Self, scale: f64) -> Result<Self, Infallible> {
                Ok(self * (<$t>::from(self * g > 0.0) * (scale as $t)))
            }
        }
    };
}

scalar_elem!(f32);
scalar_elem!(f64);

impl Elem for Tensor {
    type Err = candle_core::Error;
    fn add(&self, o: &Self) -> candle_core::Result<Self> {
        self + o
    }
    fn sub(&self, o: &Self) -> candle_core::Result<Self> {
        self - o
    }
    fn mul(&self, o: &Self) -> candle_core::Result<Self> {
        self * o
    }
    fn div(&self, o: &Self) -> candle_core::Result<Self> {
        self / o
    }
    fn affine(&self, mul: f64, add: f64) -> candle_core::Result<Self> {
        Tensor::affine(self, mul, add)
    }
    fn sqrt(&self) -> candle_core::Result<Self> {
        Tensor::sqrt(self)
    }
    fn sqr(&self) -> candle_core::Result<Self> {
        Tensor::sqr(self)
    }
    fn maximum(&self, o: &Self) -> candle_core::Result<Self> {
        Tensor::maximum(self, o)
    }
    fn abs(&self) -> candle_core::Result<Self> {
        Tensor::abs(self)
    }
    fn minimum(&self, o: &Self) -> candle_core::Result<Self> {
        Tensor::minimum(self, o)
    }
    fn sign(&self) -> candle_core::Result<Self> {
        Tensor::sign(self)
    }
    fn exp(&self) -> candle_core::Result<Self> {
        Tensor::exp(self)
    }
    fn ln(&self) -> candle_core::Result<Self> {
        Tensor::log(self)
    }
    fn powf(&self, k: f64) -> candle_core::Result<Self> {
        Tensor::powf(self, k)
    }
    fn cbrt(&self) -> candle_core::Result<Self> {
        Tensor::powf(self, 1.0 / 3.0)
    }
    fn gt(&self, o: &Self) -> candle_core::Result<Self> {
        Tensor::gt(self, o)?.to_dtype(self.dtype())
    }
    fn lt(&self, o: &Self) -> candle_core::Result<Self> {
        Tensor::lt(self, o)?.to_dtype(self.dtype())
    }
    fn negate_if(&self, negate: bool) -> candle_core::Result<Self> {
        if negate {
            self.neg()
        } else {
            Ok(self.clone())
        }
    }
    fn select(&self, on_true: &Self, on_false: &Self) -> candle_core::Result<Self> {
        Tensor::ne(self, 0.0)?.where_cond(on_true, on_false)
    }
    fn cautious(&self, g: &Self, _scale: f64) -> candle_core::Result<Self> {
        let mask = (self * g)?.gt(0.0)?.to_dtype(self.dtype())?;
        let mean = mask.to_dtype(candle_core::DType::F64)?.mean_all()?.to_scalar::<f64>()?.max(1e-3);
        self * mask.affine(1.0 / mean, 0.0)?
    }
}

/// `a + w·(b - a)`, as PyTorch's `lerp_` computes it: for `|w| ≥ 0.5` it uses the form
/// `b - (b - a)·(1 - w)`, which is exact at `w = 1`.
#[inline(always)]
pub fn lerp<E: Elem>(a: &E, b: &E, w: f64) -> Result<E, E::Err> {
    if w.abs() < 0.5 {
        a.add(&b.sub(a)?.scale(w)?)
    } else {
        b.sub(&b.sub(a)?.scale(1.0 - w)?)
    }
}

/// `v·decay + ((1 - decay)·g)·g`: an exponential moving average of squares, in the order of
/// PyTorch's `v.mul_(decay).addcmul_(g, g, value=1 - decay)`.
#[inline(always)]
pub fn ema_sq<E: Elem>(v: &E, g: &E, decay: f64) -> Result<E, E::Err> {
    v.scale(decay)?.add(&g.scale(1.0 - decay)?.mul(g)?)
}

/// `max(x, lo)`, PyTorch's `x.clamp(min=lo)`.
#[inline(always)]
pub fn clamp_min<E: Elem>(x: &E, lo: f64) -> Result<E, E::Err> {
    x.maximum(&x.affine(0.0, lo)?)
}

/// `min(max(x, -c), c)`, PyTorch's `x.clamp(-c, c)`.
#[inline(always)]
pub fn clamp_abs<E: Elem>(x: &E, c: f64) -> Result<E, E::Err> {
    let lo = clamp_min(x, -c)?;
    lo.minimum(&x.affine(0.0, c)?)
}

/// `p + (k·a) / b`, PyTorch's `p.addcdiv_(a, b, value=k)`.
#[inline(always)]
pub fn addcdiv<E: Elem>(p: &E, a: &E, b: &E, k: f64) -> Result<E, E::Err> {
    p.add(&a.scale(k)?.div(b)?)
}

/// `√(x + eps)` when `inside`, else `√x + eps`: where ε goes is an option (d2l and optax's
/// `eps_in_sqrt` put it inside; PyTorch outside).
#[inline(always)]
pub fn root_plus_eps<E: Elem>(x: &E, eps: f64, inside: bool) -> Result<E, E::Err> {
    if inside {
        x.affine(1.0, eps)?.sqrt()
    } else {
        x.sqrt()?.affine(1.0, eps)
    }
}

/// `‖t‖₂` as an f64 (a reduction on the tensor's device, then one number to the host).
pub fn norm(t: &Tensor) -> candle_core::Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arithmetic_cube_root_is_exact_to_the_last_bits() {
        let mut x = 1e-30f64;
        while x < 1e30 {
            for v in [x, x * 1.37, x * 2.9] {
                // The true cube root to the last bits; PyTorch's pow(1/3) is off it by the
                // rounding of 1/3, a relative |ln v|·2^-54 more.
                let got = Elem::cbrt(&v).unwrap();
                let want = v.cbrt();
                assert!((got - want).abs() <= 4.0 * f64::EPSILON * want, "{v}: {got} vs {want}");
                let pow = v.powf(1.0 / 3.0);
                assert!(
                    (got - pow).abs() <= (4.0 * f64::EPSILON + v.ln().abs() * 6e-17) * pow,
                    "{v}: {got} vs {pow}"
                );
                let v32 = v as f32;
                if v32.is_normal() {
                    let want = v32.cbrt();
                    let got = Elem::cbrt(&v32).unwrap();
                    assert!((got - want).abs() <= 2.0 * f32::EPSILON * want, "{v32}: {got} vs {want}");
                }
            }
            x *= 7.3;
        }
        assert_eq!(Elem::cbrt(&0.0f64).unwrap(), 0.0);
        // f32, over every 4099th bit pattern of the positive floats, subnormals included: within
        // one unit in the last place of the true root (f64's, rounded), and equal to it but for
        // rare near-ties.
        let (mut n, mut off) = (0u32, 0u32);
        for bits in (1u32..0x7f80_0000).step_by(4099) {
            let v = f32::from_bits(bits);
            let want = (f64::from(v)).cbrt() as f32;
            let got = Elem::cbrt(&v).unwrap();
            n += 1;
            if got != want {
                off += 1;
                assert!(got.to_bits().abs_diff(want.to_bits()) <= 1, "{v:e}: {got:e} vs {want:e}");
            }
        }
        assert!(off * 200 <= n, "{off} of {n} a unit off");
        assert_eq!(Elem::cbrt(&0.0f32).unwrap(), 0.0);
        // f32's subnormals and extremes (scaled into range, so nothing overflows); NaN stays NaN.
        assert!(Elem::cbrt(&f32::NAN).unwrap().is_nan());
        for v in [1e-45f32, 3e-42, 1e-39, f32::MAX, 1e-3] {
            let (got, want) = (Elem::cbrt(&v).unwrap(), v.cbrt());
            assert!((got - want).abs() <= 2.0 * f32::EPSILON * want, "{v}: {got} vs {want}");
        }
    }
    use candle_core::Device;

    /// Every operation gives the same numbers on scalars (the fused kernel) and on tensors (the
    /// composed path), zeros, negatives and ties included.
    #[test]
    fn scalar_and_tensor_arithmetic_agree() {
        let a = [-2.5f64, -1.0, 0.0, 0.0, 0.5, 1.5, 3.0, -0.25];
        let b = [1.0f64, -1.0, 0.0, 2.0, 0.5, -3.0, 0.125, 4.0];
        let ta = Tensor::new(&a, &Device::Cpu).unwrap();
        let tb = Tensor::new(&b, &Device::Cpu).unwrap();
        type Op = fn(&f64, &f64) -> f64;
        type TOp = fn(&Tensor, &Tensor) -> Tensor;
        let cases: Vec<(&str, Op, TOp)> = vec![
            ("minimum", |x, y| Elem::minimum(x, y).unwrap(), |x, y| Elem::minimum(x, y).unwrap()),
            ("maximum", |x, y| Elem::maximum(x, y).unwrap(), |x, y| Elem::maximum(x, y).unwrap()),
            ("sign", |x, _| Elem::sign(x).unwrap(), |x, _| Elem::sign(x).unwrap()),
            ("exp", |x, _| Elem::exp(x).unwrap(), |x, _| Elem::exp(x).unwrap()),
            (
                "ln |x|+1",
                |x, _| Elem::ln(&(f64::abs(*x) + 1.0)).unwrap(),
                |x, _| Elem::ln(&x.abs().unwrap().affine(1.0, 1.0).unwrap()).unwrap(),
            ),
            (
                "powf",
                |x, _| Elem::powf(&f64::abs(*x), 1.5).unwrap(),
                |x, _| Elem::powf(&x.abs().unwrap(), 1.5).unwrap(),
            ),
            ("gt", |x, y| Elem::gt(x, y).unwrap(), |x, y| Elem::gt(x, y).unwrap()),
            ("lt", |x, y| Elem::lt(x, y).unwrap(), |x, y| Elem::lt(x, y).unwrap()),
            (
                "select",
                |x, y| Elem::select(&Elem::gt(x, y).unwrap(), x, y).unwrap(),
                |x, y| Elem::select(&Elem::gt(x, y).unwrap(), x, y).unwrap(),
            ),
        ];
        for (name, scalar, tensor) in cases {
            let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| scalar(x, y)).collect();
            let got = tensor(&ta, &tb).to_vec1::<f64>().unwrap();
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(
            [Elem::sign(&0.0f32).unwrap(), Elem::sign(&-0.0f32).unwrap(), Elem::sign(&-3.0f32).unwrap()],
            [0.0, 0.0, -1.0]
        );
    }
}
