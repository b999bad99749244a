//! d2l's `train_2d` / `show_trace_2d`: minimize a 2-D function from a start point with any
//! optimizer, gradients from our tape, and print `epoch %d, x1 %f, x2 %f`.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};

/// The 2-D test functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `f(x) = 0.1·x1² + 2·x2²`, d2l sections 7.4–7.6.
    D2l,
    /// `f(x) = x1² + 2·x2²`, d2l section 7.2.
    Sec72,
    /// Rosenbrock's `(1 - x1)² + 100·(x2 - x1²)²`.
    Rosenbrock,
}

impl FromStr for Function {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace(' ', "").as_str() {
            "d2l" | "0.1x1^2+2x2^2" | "0.1*x1^2+2*x2^2" => Ok(Self::D2l),
            "sec7.2" | "7.2" | "x1^2+2x2^2" | "x1^2+2*x2^2" => Ok(Self::Sec72),
            "rosenbrock" => Ok(Self::Rosenbrock),
            other => Err(format!(
                "unknown function `{other}`: expected d2l (0.1*x1^2+2*x2^2), sec7.2 (x1^2+2*x2^2) or rosenbrock"
            )),
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::D2l => "0.1*x1^2 + 2*x2^2",
            Self::Sec72 => "x1^2 + 2*x2^2",
            Self::Rosenbrock => "(1 - x1)^2 + 100*(x2 - x1^2)^2",
        })
    }
}

impl Function {
    /// The function of a 2-element variable, through the tape.
    pub fn eval(&self, x: &Var) -> taper_autograd::Result<Var> {
        let dt = x.dtype();
        let dev = x.device().clone();
        let weights = |a: f64, b: f64| -> taper_autograd::Result<Var> {
            Ok(Var::constant(Tensor::new(&[a, b], &Device::Cpu)?.to_dtype(dt)?.to_device(&dev)?))
        };
        match self {
            Self::D2l => x.sqr()?.mul(&weights(0.1, 2.0)?)?.sum_all(),
            Self::Sec72 => x.sqr()?.mul(&weights(1.0, 2.0)?)?.sum_all(),
            Self::Rosenbrock => {
                let x1 = x.narrow(0, 0, 1)?;
                let x2 = x.narrow(0, 1, 1)?;
                let a = x1.affine(-1.0, 1.0)?.sqr()?;
                let b = x2.sub(&x1.sqr()?)?.sqr()?.scale(100.0)?;
                a.add(&b)?.sum_all()
            }
        }
    }

    /// The function on plain numbers, for contour lines.
    pub fn value(&self, x1: f64, x2: f64) -> f64 {
        match self {
            Self::D2l => 0.1 * x1 * x1 + 2.0 * x2 * x2,
            Self::Sec72 => x1 * x1 + 2.0 * x2 * x2,
            Self::Rosenbrock => (1.0 - x1).powi(2) + 100.0 * (x2 - x1 * x1).powi(2),
        }
    }
}

/// d2l's line: `epoch %d, x1 %f, x2 %f`.
pub fn format_line(epoch: usize, x1: f64, x2: f64) -> String {
    format!("epoch {epoch}, x1 {x1:.6}, x2 {x2:.6}")
}

/// Runs `steps` optimizer steps from `start`; returns the points visited, the start first.
pub fn run(
    function: Function,
    spec: &str,
    start: (f64, f64),
    steps: usize,
    dtype: DType,
    device: &Device,
) -> crate::optim::Result<Vec<(f64, f64)>> {
    let mut store = ParamStore::new();
    let init = Tensor::new(&[start.0, start.1], &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    let x = store.insert("x", init)?;
    let mut opt = crate::optim::from_spec(spec, store.trainable())?;
    let mut points = vec![start];
    for _ in 0..steps {
        let tape = Tape::new();
        let f = function.eval(&tape.param(&x))?;
        opt.step(&f.backward()?)?;
        let v = x.value().to_dtype(DType::F64)?.to_vec1::<f64>()?;
        points.push((v[0], v[1]));
    }
    Ok(points)
}

/// A plotting window around the points (d2l draws `[-5.5, 1] × [-3, 1]` for its start).
pub fn window(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    let finite =
        points.iter().filter(|(a, b)| a.is_finite() && b.is_finite() && a.abs() < 1e3 && b.abs() < 1e3);
    let (mut x0, mut x1, mut y0, mut y1) = (-5.5f64, 1.0f64, -3.0f64, 1.0f64);
    for &(a, b) in finite {
        x0 = x0.min(a - 0.5);
        x1 = x1.max(a + 0.5);
        y0 = y0.min(b - 0.5);
        y1 = y1.max(b + 0.5);
    }
    ((x0, x1), (y0, y1))
}
