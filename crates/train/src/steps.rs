//! Pieces of a training step that a hand-written loop (a language model's, say) uses without the
//! epoch-based [`crate::train`]: optimizer groups built by a rule, gradient accumulation over
//! micro-batches, and a mean loss under no-grad.

use taper_autograd::{Grads, Param, Tape, Var};
use taper_optim::{from_spec, Mixed, Optimizer};

use crate::{Error, Result};

/// One optimizer over `params` split into groups by `rule`: parameter `p` goes to group
/// `rule(p)`, and group `i` takes `spec` with the options `overrides[i]` on top (`""` for none);
/// empty groups are left out. An option the optimizer does not have (`weight_decay=0` for SGD
/// without decay, say) is dropped for that group rather than refused, so one rule serves every
/// optimizer.
pub fn optimizer_by_rule(
    spec: &str,
    params: &[Param],
    rule: impl Fn(&Param) -> usize,
    overrides: &[&str],
) -> Result<Box<dyn Optimizer>> {
    let mut groups: Vec<Vec<Param>> = vec![Vec::new(); overrides.len()];
    for p in params {
        let i = rule(p);
        let group = groups.get_mut(i).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the rule put `{}` in group {i}, but there are {} groups",
                p.name(),
                overrides.len()
            ))
        })?;
        group.push(p.clone());
    }
    let mut opt: Option<Box<dyn Optimizer>> = None;
    for (group, extra) in groups.into_iter().zip(overrides) {
        if group.is_empty() {
            continue;
        }
        let with = |s: &str| {
            if extra.is_empty() {
                s.to_string()
            } else if s.contains(':') {
                format!("{s},{extra}")
            } else {
                format!("{s}:{extra}")
            }
        };
        opt = Some(match opt {
            None => match from_spec(&with(spec), group.clone()) {
                Ok(o) => o,
                Err(_) if !extra.is_empty() => from_spec(spec, group)?,
                Err(e) => return Err(e.into()),
            },
            Some(mut o) => {
                if o.add_param_group(group.clone(), extra).is_err() {
                    o.add_param_group(group, "")?;
                }
                o
            }
        });
    }
    opt.ok_or_else(|| Error::InvalidArgument("no parameters to optimize".into()))
}

/// nanoGPT's groups (`configure_optimizers`): weight decay on the matrices (embeddings and
/// linear weights, 2 or more dimensions) only; vectors (biases, norm gains) get `weight_decay=0`.
pub fn decay_matrices_only(spec: &str, params: &[Param]) -> Result<Box<dyn Optimizer>> {
    optimizer_by_rule(spec, params, |p| usize::from(p.dims().len() < 2), &["", "weight_decay=0"])
}

/// Whether the optimizer `spec` names updates matrices only (Muon): it refuses a vector. An
/// invalid spec is an error, not `false`.
pub fn updates_matrices_only(spec: &str) -> Result<bool> {
    taper_optim::canonical(spec)?;
    let mut store = taper_autograd::ParamStore::new();
    let v = store.insert(
        "vector",
        candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu)?,
    )?;
    Ok(matches!(from_spec(spec, vec![v]), Err(taper_optim::Error::InvalidArgument(_))))
}

/// The Muon recipe's split: `spec` over the parameters `hidden` picks (a model's hidden weight
/// matrices) and `other` over the rest (embeddings, head, norms, biases; weight decay on its
/// matrices only), as one [`Mixed`] optimizer whose groups are `spec`'s then `other`'s (one
/// checkpoint, one schedule). A side with no parameters is left out.
pub fn split_hidden(
    spec: &str,
    other: &str,
    params: &[Param],
    hidden: impl Fn(&Param) -> bool,
) -> Result<Box<dyn Optimizer>> {
    let (picked, rest): (Vec<Param>, Vec<Param>) = params.iter().cloned().partition(|p| hidden(p));
    let mut parts = Vec::new();
    if !picked.is_empty() {
        parts.push(from_spec(spec, picked)?);
    }
    if !rest.is_empty() {
        parts.push(decay_matrices_only(other, &rest)?);
    }
    Ok(Box::new(Mixed::new(parts)?))
}

/// A model's optimizer for a spec of any kind: an optimizer that updates matrices only (Muon)
/// takes the matrices `hidden` picks and `other` the rest ([`split_hidden`]), as the Muon
/// recipe prescribes; any other takes every parameter with weight decay on the matrices only
/// ([`decay_matrices_only`]).
pub fn model_optimizer(
    spec: &str,
    other: &str,
    params: &[Param],
    hidden: impl Fn(&Param) -> bool,
) -> Result<Box<dyn Optimizer>> {
    if updates_matrices_only(spec)? {
        split_hidden(spec, other, params, hidden)
    } else {
        decay_matrices_only(spec, params)
    }
}

/// The summed gradients of `micro` micro-batches, each loss scaled by `1/micro` (so the sum is
/// the gradient of the mean loss, as one batch `micro` times larger gives), and the mean of the
/// unscaled losses. `loss(i, tape)` builds micro-batch `i`'s loss on `tape`.
pub fn accumulate(micro: usize, mut loss: impl FnMut(usize, &Tape) -> Result<Var>) -> Result<(f64, Grads)> {
    if micro == 0 {
        return Err(Error::InvalidArgument("gradient accumulation needs at least 1 micro-batch".into()));
    }
    let mut grads = Grads::default();
    let mut total = 0.0;
    for i in 0..micro {
        let tape = Tape::new();
        let l = loss(i, &tape)?;
        total += l.to_scalar_f64()?;
        let g = if micro == 1 { l.backward()? } else { l.scale(1.0 / micro as f64)?.backward()? };
        grads.accumulate(g)?;
    }
    Ok((total / micro as f64, grads))
}

/// The mean of `n` losses computed under no-grad (nothing recorded, nothing kept for a backward
/// pass): an evaluation on held-out batches. `loss(i, tape)` builds batch `i`'s loss.
pub fn mean_loss(n: usize, mut loss: impl FnMut(usize, &Tape) -> Result<Var>) -> Result<f64> {
    if n == 0 {
        return Err(Error::InvalidArgument("an evaluation needs at least 1 batch".into()));
    }
    let mut total = 0.0;
    for i in 0..n {
        let tape = Tape::new();
        total += tape.no_grad(|| loss(i, &tape))?.to_scalar_f64()?;
    }
    Ok(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use taper_autograd::ParamStore;

    fn store() -> (ParamStore, Param, Param) {
        let mut s = ParamStore::new();
        let w = s.insert("w", Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap()).unwrap();
        let b = s.insert("b", Tensor::new(&[0.5f64, -0.5], &Device::Cpu).unwrap()).unwrap();
        (s, w, b)
    }

    #[test]
    fn groups_by_rule_decay_matrices_only() {
        let (s, w, b) = store();
        let opt = decay_matrices_only("adamw:lr=0.1,weight_decay=0.5", &s.trainable()).unwrap();
        let groups = opt.export_state().unwrap().groups;
        assert_eq!(groups.len(), 2);
        assert!(groups[0].contains("weight_decay=0.5") && groups[1].contains("weight_decay=0"), "{groups:?}");
        // SGD without weight decay takes both groups plainly; a rule out of range is an error.
        assert!(decay_matrices_only("sgd:lr=0.1", &s.trainable()).is_ok());
        assert!(optimizer_by_rule("sgd:lr=0.1", &[w, b], |_| 3, &[""]).is_err());
    }

    #[test]
    fn matrix_only_optimizers_get_the_other_parameters_an_optimizer_of_their_own() {
        let (s, w, _) = store();
        assert!(updates_matrices_only("muon:lr=0.02").unwrap());
        assert!(!updates_matrices_only("adamw").unwrap());
        assert!(updates_matrices_only("muon:lr=-1").is_err());
        let hidden = |p: &Param| p.name() == "w";
        let opt = model_optimizer("muon:lr=0.02", "adamw:lr=0.001", &s.trainable(), hidden).unwrap();
        let groups: Vec<String> = (0..opt.num_groups()).map(|g| opt.group_spec(g).unwrap().name).collect();
        assert_eq!(groups, ["muon", "adamw"]);
        assert_eq!(opt.group_learning_rate(1), Some(0.001));
        // Any other optimizer takes everything (weight decay on matrices only).
        let opt = model_optimizer("adam:lr=0.1", "adamw:lr=0.001", &s.trainable(), hidden).unwrap();
        assert_eq!(opt.params().len(), 2);
        assert!((0..opt.num_groups()).all(|g| opt.group_spec(g).unwrap().name == "adam"));
        // Muon over a vector is refused, whichever way it is asked.
        assert!(split_hidden("muon", "adamw", &s.trainable(), |_| true).is_err());
        assert_eq!(split_hidden("muon", "adamw", &[w], |_| true).unwrap().num_groups(), 1);
    }

    #[test]
    fn accumulated_gradients_are_the_mean_losss() {
        let (_, w, _) = store();
        let xs = [
            Tensor::new(&[[1.0f64], [2.0]], &Device::Cpu).unwrap(),
            Tensor::new(&[[-1.0f64], [0.5]], &Device::Cpu).unwrap(),
        ];
        let loss = |i: usize, tape: &Tape| -> Result<Var> {
            Ok(tape.param(&w).matmul(&Var::constant(xs[i].clone()))?.sqr()?.sum_all()?)
        };
        let (mean, g) = accumulate(2, loss).unwrap();
        let (l0, g0) = accumulate(1, |_, t| loss(0, t)).unwrap();
        let (l1, g1) = accumulate(1, |_, t| loss(1, t)).unwrap();
        assert!((mean - (l0 + l1) / 2.0).abs() < 1e-12);
        let want = ((g0.get(&w).unwrap() + g1.get(&w).unwrap()).unwrap() * 0.5).unwrap();
        let got = g.get(&w).unwrap();
        assert!((got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap() < 1e-12);
        assert!((mean_loss(2, loss).unwrap() - mean).abs() < 1e-12);
        assert!(accumulate(0, loss).is_err() && mean_loss(0, loss).is_err());
    }
}
