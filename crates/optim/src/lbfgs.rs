//! L-BFGS (Liu & Nocedal, 1989; PyTorch's `torch.optim.LBFGS`, with its strong-Wolfe line
//! search ported from Torch7's `lswolfe.lua`): the closure-driven kind of optimizer.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Grads, Param};

use crate::rule::{check_float, check_unique_params, valid_lr};
use crate::spec::OptimSpec;
use crate::Hyper;
use crate::{Error, OptimState, Optimizer, Result, StepOutcome};

/// What a closure returns: the loss at the current parameters and its gradients.
pub type Evaluation = (f64, Grads);

/// L-BFGS's hyperparameters, PyTorch's names and defaults.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "lbfgs")]
pub struct LbfgsOptions {
    /// Learning rate (1): the initial step length.
    #[hp(default = 1.0, range = ">= 0")]
    pub lr: f64,
    /// Iterations per step (20).
    #[hp(default = 20, min = 1)]
    pub max_iter: u64,
    /// Closure evaluations per step (`max_iter·5/4`).
    #[hp(default = max_iter * 5 / 4, min = 1)]
    pub max_eval: u64,
    /// Stop when every gradient entry is at most this (1e-7).
    #[hp(default = 1e-7, range = ">= 0")]
    pub tolerance_grad: f64,
    /// Stop when the step or the loss changes less than this (1e-9).
    #[hp(default = 1e-9, range = ">= 0")]
    pub tolerance_change: f64,
    /// Curvature pairs kept (100).
    #[hp(default = 100, min = 1)]
    pub history_size: u64,
    /// `none` (fixed steps of `lr`) or `strong_wolfe`.
    #[hp(default = "none", words = ["none", "strong_wolfe"])]
    pub line_search_fn: &'static str,
    /// Ascend the objective instead of descending it (L-BFGS negates the loss and gradients itself).
    #[hp(default = false)]
    pub maximize: bool,
}

/// What L-BFGS carries from one step to the next (PyTorch's `state`).
#[derive(Debug, Clone, Default)]
struct History {
    func_evals: u64,
    n_iter: u64,
    d: Vec<f64>,
    t: f64,
    old_dirs: Vec<Vec<f64>>,
    old_stps: Vec<Vec<f64>>,
    ro: Vec<f64>,
    h_diag: f64,
    prev_flat_grad: Vec<f64>,
    prev_loss: f64,
}

/// L-BFGS: a quasi-Newton method that keeps the last `history_size` curvature pairs and takes
/// up to `max_iter` iterations per step, each re-evaluating the loss through a closure
/// ([`Optimizer::step_closure`]); with `line_search_fn=strong_wolfe` each step length is found by
/// a line search satisfying the strong Wolfe conditions (`c1 = 1e-4`, `c2 = 0.9`). Exactly
/// `torch.optim.LBFGS`:
///
/// ```text
/// d ← -H·g   (two-loop recursion over the pairs (s, y), H0 = sᵀy/yᵀy)
/// t ← lr·min(1, 1/‖g‖₁) at the first iteration, else lr;  or the line search's t
/// x ← x + t·d
/// ```
///
/// One parameter group (as PyTorch); the flat vectors live on the host in f64, and a plain
/// [`Optimizer::step`] is an error (there is nothing to re-evaluate).
#[derive(Debug, Clone)]
pub struct Lbfgs {
    opts: LbfgsOptions,
    params: Vec<Param>,
    state: Option<History>,
}

impl Lbfgs {
    /// The spec name.
    pub const NAME: &'static str = "lbfgs";

    /// L-BFGS over `params`.
    pub fn new(opts: LbfgsOptions, params: Vec<Param>) -> Result<Self> {
        opts.validate()?;
        check_unique_params(&params, std::iter::empty())?;
        check_float(&params)?;
        Ok(Self { opts, params, state: None })
    }

    /// The constructor for the registry.
    pub fn build(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
        Ok(Box::new(Self::new(LbfgsOptions::from_spec(spec)?, params)?))
    }

    /// The hyperparameters.
    pub fn options(&self) -> &LbfgsOptions {
        &self.opts
    }

    fn flat_grad(&self, grads: &Grads) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for p in &self.params {
            match grads.get(p) {
                Some(g) => {
                    if g.dims() != p.dims().as_slice() {
                        return Err(Error::GradientMismatch {
                            param: p.name().into(),
                            msg: format!("gradient is {:?}, parameter is {:?}", g.dims(), p.dims()),
                        });
                    }
                    out.extend(
                        g.flatten_all()?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec1::<f64>()?,
                    )
                }
                None => out.extend(std::iter::repeat_n(0.0, p.dims().iter().product())),
            }
        }
        if out.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFiniteGradient { param: "(the flat gradient)".into() });
        }
        if self.opts.maximize {
            out.iter_mut().for_each(|x| *x = -*x);
        }
        Ok(out)
    }

    fn values(&self) -> Result<Vec<Tensor>> {
        Ok(self.params.iter().map(|p| p.value()).collect())
    }

    fn restore(&self, values: &[Tensor]) -> Result<()> {
        for (p, v) in self.params.iter().zip(values) {
            p.set(v.clone())?;
        }
        Ok(())
    }

    /// `p ← p + t·d` for every parameter's slice of `d`.
    fn add_grad(&self, t: f64, d: &[f64]) -> Result<()> {
        let mut offset = 0;
        for p in &self.params {
            let v = p.value();
            let n = v.elem_count();
            let host = v.flatten_all()?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec1::<f64>()?;
            let new: Vec<f64> = host.iter().zip(&d[offset..offset + n]).map(|(x, di)| x + t * di).collect();
            p.set(
                Tensor::from_vec(new, v.dims(), &Device::Cpu)?.to_dtype(v.dtype())?.to_device(v.device())?,
            )?;
            offset += n;
        }
        Ok(())
    }

    fn evaluate(&self, closure: &mut dyn FnMut() -> Result<Evaluation>) -> Result<(f64, Vec<f64>)> {
        let (loss, grads) = closure()?;
        let loss = if self.opts.maximize { -loss } else { loss };
        Ok((loss, self.flat_grad(&grads)?))
    }

    /// PyTorch's `_directional_evaluate`: the loss and gradient at `x + t·d`, then back to `x`.
    fn directional(
        &self,
        closure: &mut dyn FnMut() -> Result<Evaluation>,
        x: &[Tensor],
        t: f64,
        d: &[f64],
    ) -> Result<(f64, Vec<f64>)> {
        self.add_grad(t, d)?;
        let out = self.evaluate(closure);
        self.restore(x)?;
        out
    }

    fn run(&mut self, closure: &mut dyn FnMut() -> Result<Evaluation>) -> Result<f64> {
        let o = self.opts.clone();
        let (orig_loss, grads) = closure()?;
        let mut loss = if o.maximize { -orig_loss } else { orig_loss };
        let mut flat_grad = self.flat_grad(&grads)?;
        let mut st = self.state.take().unwrap_or_default();
        st.func_evals += 1;
        let mut current_evals = 1;
        if max_abs(&flat_grad) <= o.tolerance_grad {
            self.state = Some(st);
            return Ok(orig_loss);
        }
        let mut n_iter = 0;
        while n_iter < o.max_iter {
            n_iter += 1;
            st.n_iter += 1;
            if st.n_iter == 1 {
                st.d = flat_grad.iter().map(|g| -g).collect();
                st.old_dirs.clear();
                st.old_stps.clear();
                st.ro.clear();
                st.h_diag = 1.0;
            } else {
                let y: Vec<f64> = flat_grad.iter().zip(&st.prev_flat_grad).map(|(a, b)| a - b).collect();
                let s: Vec<f64> = st.d.iter().map(|di| di * st.t).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if st.old_dirs.len() as u64 == o.history_size {
                        st.old_dirs.remove(0);
                        st.old_stps.remove(0);
                        st.ro.remove(0);
                    }
                    st.h_diag = ys / dot(&y, &y);
                    st.old_dirs.push(y);
                    st.old_stps.push(s);
                    st.ro.push(1.0 / ys);
                }
                let num_old = st.old_dirs.len();
                let mut al = vec![0.0; num_old];
                let mut q: Vec<f64> = flat_grad.iter().map(|g| -g).collect();
                for i in (0..num_old).rev() {
                    al[i] = dot(&st.old_stps[i], &q) * st.ro[i];
                    axpy(&mut q, -al[i], &st.old_dirs[i]);
                }
                let mut r: Vec<f64> = q.iter().map(|x| x * st.h_diag).collect();
                for (((y, s), ro), al) in st.old_dirs.iter().zip(&st.old_stps).zip(&st.ro).zip(&al) {
                    let be_i = dot(y, &r) * ro;
                    axpy(&mut r, al - be_i, s);
                }
                st.d = r;
            }
            st.prev_flat_grad.clone_from(&flat_grad);
            st.prev_loss = loss;
            st.t = if st.n_iter == 1 {
                (1.0f64).min(1.0 / flat_grad.iter().map(|g| g.abs()).sum::<f64>()) * o.lr
            } else {
                o.lr
            };
            let gtd = dot(&flat_grad, &st.d);
            if gtd > -o.tolerance_change {
                break;
            }
            let ls_func_evals;
            let mut opt_cond = false;
            if o.line_search_fn == "strong_wolfe" {
                let x_init = self.values()?;
                let d = st.d.clone();
                let max_ls = o.max_eval.saturating_sub(current_evals);
                let (f, g, t, evals) = strong_wolfe(
                    &mut |t| self.directional(closure, &x_init, t, &d),
                    st.t,
                    &d,
                    loss,
                    &flat_grad,
                    gtd,
                    o.tolerance_change,
                    max_ls,
                )?;
                (loss, flat_grad, st.t) = (f, g, t);
                self.add_grad(st.t, &st.d)?;
                opt_cond = max_abs(&flat_grad) <= o.tolerance_grad;
                ls_func_evals = evals;
            } else {
                self.add_grad(st.t, &st.d)?;
                if n_iter != o.max_iter {
                    (loss, flat_grad) = self.evaluate(closure)?;
                    opt_cond = max_abs(&flat_grad) <= o.tolerance_grad;
                    ls_func_evals = 1;
                } else {
                    ls_func_evals = 0;
                }
            }
            current_evals += ls_func_evals;
            st.func_evals += ls_func_evals;
            if n_iter == o.max_iter
                || current_evals >= o.max_eval
                || opt_cond
                || st.d.iter().map(|di| (di * st.t).abs()).fold(0.0, f64::max) <= o.tolerance_change
                || (loss - st.prev_loss).abs() < o.tolerance_change
            {
                break;
            }
        }
        self.state = Some(st);
        Ok(orig_loss)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += a * xi);
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// PyTorch's `_cubic_interpolate`: the minimizer of the cubic through two points with their
/// derivatives, clamped to `bounds` (the bisection when the cubic has none).
fn cubic_interpolate(
    x1: f64,
    f1: f64,
    g1: f64,
    x2: f64,
    f2: f64,
    g2: f64,
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// PyTorch's `_strong_wolfe` (`c1 = 1e-4`, `c2 = 0.9`): returns the loss, gradient and step at
/// the accepted point, and the evaluations spent.
#[allow(clippy::too_many_arguments)]
fn strong_wolfe(
    obj: &mut dyn FnMut(f64) -> Result<(f64, Vec<f64>)>,
    mut t: f64,
    d: &[f64],
    f: f64,
    g: &[f64],
    gtd: f64,
    tolerance_change: f64,
    max_ls: u64,
) -> Result<(f64, Vec<f64>, f64, u64)> {
    let (c1, c2) = (1e-4, 0.9);
    let d_norm = max_abs(d);
    let (mut f_new, mut g_new) = obj(t)?;
    let mut evals = 1;
    let mut gtd_new = dot(&g_new, d);
    let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (0.0, f, g.to_vec(), gtd);
    let mut done = false;
    let mut ls_iter = 0;
    let mut bracket: Vec<f64> = Vec::new();
    let mut bracket_f: Vec<f64> = Vec::new();
    let mut bracket_g: Vec<Vec<f64>> = Vec::new();
    let mut bracket_gtd: Vec<f64> = Vec::new();
    while ls_iter < max_ls {
        if f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= f_prev) {
            bracket = vec![t_prev, t];
            bracket_f = vec![f_prev, f_new];
            bracket_g = vec![g_prev.clone(), g_new.clone()];
            bracket_gtd = vec![gtd_prev, gtd_new];
            break;
        }
        if gtd_new.abs() <= -c2 * gtd {
            bracket = vec![t];
            bracket_f = vec![f_new];
            bracket_g = vec![g_new.clone()];
            done = true;
            break;
        }
        if gtd_new >= 0.0 {
            bracket = vec![t_prev, t];
            bracket_f = vec![f_prev, f_new];
            bracket_g = vec![g_prev.clone(), g_new.clone()];
            bracket_gtd = vec![gtd_prev, gtd_new];
            break;
        }
        let min_step = t + 0.01 * (t - t_prev);
        let max_step = t * 10.0;
        let tmp = t;
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, Some((min_step, max_step)));
        t_prev = tmp;
        f_prev = f_new;
        g_prev = g_new.clone();
        gtd_prev = gtd_new;
        (f_new, g_new) = obj(t)?;
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
    }
    if ls_iter == max_ls {
        bracket = vec![0.0, t];
        bracket_f = vec![f, f_new];
        bracket_g = vec![g.to_vec(), g_new.clone()];
    }
    let mut insuf_progress = false;
    let last = bracket_f.len() - 1;
    let (mut low, mut high) = if bracket_f[0] <= bracket_f[last] { (0, 1) } else { (1, 0) };
    while !done && ls_iter < max_ls {
        if (bracket[1] - bracket[0]).abs() * d_norm < tolerance_change {
            break;
        }
        t = cubic_interpolate(
            bracket[0],
            bracket_f[0],
            bracket_gtd[0],
            bracket[1],
            bracket_f[1],
            bracket_gtd[1],
            None,
        );
        let (bmax, bmin) = (bracket[0].max(bracket[1]), bracket[0].min(bracket[1]));
        let eps = 0.1 * (bmax - bmin);
        if (bmax - t).min(t - bmin) < eps {
            if insuf_progress || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() { bmax - eps } else { bmin + eps };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        (f_new, g_new) = obj(t)?;
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
        if f_new > f + c1 * t * gtd || f_new >= bracket_f[low] {
            bracket[high] = t;
            bracket_f[high] = f_new;
            bracket_g[high] = g_new.clone();
            bracket_gtd[high] = gtd_new;
            (low, high) = if bracket_f[0] <= bracket_f[1] { (0, 1) } else { (1, 0) };
        } else {
            if gtd_new.abs() <= -c2 * gtd {
                done = true;
            } else if gtd_new * (bracket[high] - bracket[low]) >= 0.0 {
                bracket[high] = bracket[low];
                bracket_f[high] = bracket_f[low];
                bracket_g[high] = bracket_g[low].clone();
                bracket_gtd[high] = bracket_gtd[low];
            }
            bracket[low] = t;
            bracket_f[low] = f_new;
            bracket_g[low] = g_new.clone();
            bracket_gtd[low] = gtd_new;
        }
    }
    let low = low.min(bracket.len() - 1);
    Ok((bracket_f[low], bracket_g[low].clone(), bracket[low], evals))
}

impl Optimizer for Lbfgs {
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        (group == 0).then(|| self.opts.to_spec())
    }
    fn params(&self) -> Vec<Param> {
        self.params.clone()
    }
    fn step(&mut self, _grads: &Grads) -> Result<StepOutcome> {
        Err(Error::InvalidArgument(
            "lbfgs re-evaluates the loss several times per step: give it a closure (Optimizer::step_closure)"
                .into(),
        ))
    }
    /// One L-BFGS step; on an error (a closure's, or a non-finite gradient) the parameters and
    /// the history are as before the step.
    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<Evaluation>,
    ) -> Result<(f64, StepOutcome)> {
        if self.params.is_empty() {
            return Ok((closure()?.0, StepOutcome::Applied));
        }
        let (values, state) = (self.values()?, self.state.clone());
        match self.run(closure) {
            Ok(loss) => Ok((loss, StepOutcome::Applied)),
            Err(e) => {
                self.restore(&values)?;
                self.state = state;
                Err(e)
            }
        }
    }
    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        match (group, key) {
            (0, "lr") => Some(self.opts.lr),
            _ => None,
        }
    }
    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        if group != 0 {
            return Err(Error::InvalidArgument(format!("lbfgs has one parameter group, not {}", group + 1)));
        }
        if key != "lr" {
            return Err(Error::InvalidArgument(format!("`lbfgs` cannot set option `{key}`")));
        }
        valid_lr(Self::NAME, value)?;
        self.opts.lr = value;
        Ok(())
    }
    fn add_param_group(&mut self, _params: Vec<Param>, _options: &str) -> Result<()> {
        Err(Error::InvalidArgument("lbfgs takes one parameter group (as PyTorch's)".into()))
    }
    /// Only `step`: the iterations taken (L-BFGS keeps one flat state for all parameters).
    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        let Some(st) = &self.state else { return Ok(None) };
        if name != "step" || !self.params.iter().any(|p| p.id() == param.id()) {
            return Ok(None);
        }
        Ok(Some(Tensor::new(st.n_iter as f64, &Device::Cpu)?))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn export_state(&self) -> Result<OptimState> {
        let mut scalars = BTreeMap::from([("group.0.lr".to_string(), self.opts.lr)]);
        let mut tensors = Vec::new();
        if let Some(st) = &self.state {
            let vec = |v: &[f64]| Tensor::from_slice(v, v.len(), &Device::Cpu);
            for (k, v) in [
                ("func_evals", st.func_evals as f64),
                ("n_iter", st.n_iter as f64),
                ("t", st.t),
                ("h_diag", st.h_diag),
                ("prev_loss", st.prev_loss),
                ("history", st.old_dirs.len() as f64),
            ] {
                scalars.insert(format!("lbfgs.{k}"), v);
            }
            for (i, r) in st.ro.iter().enumerate() {
                scalars.insert(format!("lbfgs.ro.{i}"), *r);
            }
            tensors.push(("lbfgs.d".to_string(), vec(&st.d)?));
            tensors.push(("lbfgs.prev_flat_grad".to_string(), vec(&st.prev_flat_grad)?));
            for (i, (y, s)) in st.old_dirs.iter().zip(&st.old_stps).enumerate() {
                tensors.push((format!("lbfgs.old_dirs.{i}"), vec(y)?));
                tensors.push((format!("lbfgs.old_stps.{i}"), vec(s)?));
            }
        }
        Ok(OptimState { groups: vec![self.opts.to_spec().to_string()], scalars, tensors })
    }
    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        let [group] = saved.groups.as_slice() else {
            return Err(Error::State(format!(
                "lbfgs has one parameter group, the state has {}",
                saved.groups.len()
            )));
        };
        let mut opts =
            LbfgsOptions::from_spec(&OptimSpec::parse(group)?).map_err(|e| Error::State(e.to_string()))?;
        let mut scalars: HashMap<&str, f64> = saved.scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        if let Some(lr) = scalars.remove("group.0.lr") {
            valid_lr(Self::NAME, lr).map_err(|e| Error::State(e.to_string()))?;
            opts.lr = lr;
        }
        let mut tensors: HashMap<&str, &Tensor> =
            saved.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let n: usize = self.params.iter().map(|p| p.dims().iter().product::<usize>()).sum();
        let state = match scalars.remove("lbfgs.n_iter") {
            None => None,
            Some(n_iter) => {
                let mut take = |k: &str| {
                    scalars
                        .remove(format!("lbfgs.{k}").as_str())
                        .ok_or_else(|| Error::State(format!("`lbfgs.{k}` is missing")))
                };
                let (func_evals, t, h_diag, prev_loss, history) =
                    (take("func_evals")?, take("t")?, take("h_diag")?, take("prev_loss")?, take("history")?);
                let ro =
                    (0..history as usize).map(|i| take(&format!("ro.{i}"))).collect::<Result<Vec<_>>>()?;
                let mut vector = |k: String| -> Result<Vec<f64>> {
                    let t = tensors
                        .remove(k.as_str())
                        .ok_or_else(|| Error::State(format!("`{k}` is missing")))?;
                    let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                    if v.len() != n {
                        return Err(Error::State(format!(
                            "`{k}` has {} entries, the parameters {n}",
                            v.len()
                        )));
                    }
                    Ok(v)
                };
                let d = vector("lbfgs.d".into())?;
                let prev_flat_grad = vector("lbfgs.prev_flat_grad".into())?;
                let old_dirs = (0..history as usize)
                    .map(|i| vector(format!("lbfgs.old_dirs.{i}")))
                    .collect::<Result<Vec<_>>>()?;
                let old_stps = (0..history as usize)
                    .map(|i| vector(format!("lbfgs.old_stps.{i}")))
                    .collect::<Result<Vec<_>>>()?;
                let all = [n_iter, func_evals, t, h_diag, prev_loss, history];
                if all.iter().chain(&ro).any(|x| !x.is_finite()) || history > opts.history_size as f64 {
                    return Err(Error::State("lbfgs: the saved history does not fit".into()));
                }
                Some(History {
                    func_evals: func_evals as u64,
                    n_iter: n_iter as u64,
                    d,
                    t,
                    old_dirs,
                    old_stps,
                    ro,
                    h_diag,
                    prev_flat_grad,
                    prev_loss,
                })
            }
        };
        if let Some(key) = tensors.keys().next().copied().or(scalars.keys().next().copied()) {
            return Err(Error::State(format!("unexpected entry `{key}` in an lbfgs state")));
        }
        self.opts = opts;
        self.state = state;
        Ok(())
    }
    /// L-BFGS has one path (host vectors), always checks its gradients and has one point for
    /// training and evaluation: every setting is accepted and changes nothing.
    fn configure(&mut self, _setting: crate::Setting) -> Result<()> {
        Ok(())
    }
}
