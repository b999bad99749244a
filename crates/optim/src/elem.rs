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
}

/// `g + λ·p`: PyTorch's coupled L2 penalty (`weight_decay` of SGD, Adagrad, RMSprop, Adadelta,
/// Adam), or `g` itself when `λ = 0`.
#[inline(always)]
pub fn coupled_weight_decay<E: Elem>(g: &E, p: &E, weight_decay: f64) -> Result<E, E::Err> {
    if weight_decay != 0.0 {
        g.add_scaled(p, weight_decay)
    } else {
        Ok(g.clone())
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
