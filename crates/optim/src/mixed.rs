//! Different optimizers for different parameters in one optimizer object (the Muon recipe: Muon
//! for the hidden weight matrices, AdamW for embeddings, norms, biases and the head).

use std::any::Any;
use std::collections::BTreeMap;

use candle_core::Tensor;
use taper_autograd::{Grads, Param};

use crate::rule::{check_grad, check_unique_params};
use crate::spec::OptimSpec;
use crate::{kernels, Error, NonFinite, OptimState, Optimizer, Result, Setting, StepOutcome};

/// One optimizer made of several, each over its own parameters: its parameter groups are the
/// parts' groups in order (group `i` of the whole is some part's group), so a scheduler drives
/// every group of every part, a checkpoint holds every part's state, and a step is all or
/// nothing across the parts (every gradient is checked before any part moves).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use taper_autograd::ParamStore;
/// use taper_optim::{from_spec, Mixed, Optimizer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut store = ParamStore::new();
/// let w = store.insert("w", Tensor::zeros((4, 4), candle_core::DType::F32, &Device::Cpu)?)?;
/// let b = store.insert("b", Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu)?)?;
/// let opt = Mixed::new(vec![
///     from_spec("muon:lr=0.02", vec![w])?,
///     from_spec("adamw:lr=1e-3", vec![b])?,
/// ])?;
/// let opt: &dyn Optimizer = &opt;
/// assert_eq!((opt.num_groups(), opt.group_spec(1).unwrap().name.as_str()), (2, "adamw"));
/// # Ok(()) }
/// ```
pub struct Mixed {
    parts: Vec<Box<dyn Optimizer>>,
    /// The policy for non-finite gradients, applied here for all parts at once (the parts run
    /// unchecked, so that no gradient is read twice).
    non_finite: NonFinite,
}

impl std::fmt::Debug for Mixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let specs: Vec<String> =
            (0..self.group_count()).filter_map(|g| self.group_spec(g)).map(|s| s.to_string()).collect();
        f.debug_struct("Mixed").field("groups", &specs).finish()
    }
}

/// Optimizers that evaluate the loss more than once per step cannot share one gradient.
const CLOSURE_DRIVEN: &[&str] = &["lbfgs", "sam"];

impl Mixed {
    /// One optimizer of `parts` (at least one; no parameter in two parts; no closure-driven
    /// part such as L-BFGS or SAM, which evaluate the loss several times a step).
    pub fn new(parts: Vec<Box<dyn Optimizer>>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::InvalidArgument("a mixed optimizer needs at least one part".into()));
        }
        let all: Vec<Param> = parts.iter().flat_map(|p| p.params()).collect();
        check_unique_params(&all, std::iter::empty())?;
        let mut parts = parts;
        for part in &mut parts {
            let name = part.group_spec(0).map(|s| s.name).unwrap_or_default();
            if CLOSURE_DRIVEN.contains(&name.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "`{name}` evaluates the loss several times a step and cannot be one part of a mixed \
                     optimizer"
                )));
            }
            part.configure(Setting::NonFinite(NonFinite::Unchecked))?;
        }
        Ok(Self { parts, non_finite: NonFinite::Error })
    }

    /// Splits `params` by `rule` (parameter `p` goes to part `rule(p)`) and builds part `i` from
    /// `specs[i]`; parts left without parameters are left out.
    pub fn by_rule(params: &[Param], rule: impl Fn(&Param) -> usize, specs: &[&str]) -> Result<Self> {
        let mut split: Vec<Vec<Param>> = vec![Vec::new(); specs.len()];
        for p in params {
            let i = rule(p);
            split
                .get_mut(i)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "the rule put `{}` in part {i}, but there are {} specs",
                        p.name(),
                        specs.len()
                    ))
                })?
                .push(p.clone());
        }
        let parts = split
            .into_iter()
            .zip(specs)
            .filter(|(ps, _)| !ps.is_empty())
            .map(|(ps, spec)| crate::from_spec(spec, ps))
            .collect::<Result<Vec<_>>>()?;
        Self::new(parts)
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Box<dyn Optimizer>] {
        &self.parts
    }

    fn group_counts(&self) -> Vec<usize> {
        self.parts.iter().map(|p| (0..).take_while(|&g| p.group_spec(g).is_some()).count()).collect()
    }

    fn group_count(&self) -> usize {
        self.group_counts().iter().sum()
    }

    /// The part holding global group `group`, and the group's index within it.
    fn locate(&self, group: usize) -> Option<(usize, usize)> {
        let mut rest = group;
        for (i, n) in self.group_counts().into_iter().enumerate() {
            if rest < n {
                return Some((i, rest));
            }
            rest -= n;
        }
        None
    }

    /// Which part holds each parameter, by name.
    fn owners(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (i, part) in self.parts.iter().enumerate() {
            for p in part.params() {
                out.insert(p.name().to_string(), i);
            }
        }
        out
    }

    /// Every gradient of every part checked (shape, dtype, device, finiteness) before any part
    /// steps: the parts' own checks come too late to keep a step all or nothing.
    fn check(&self, grads: &Grads) -> Result<Option<String>> {
        for part in &self.parts {
            for p in part.params() {
                let Some(g) = grads.get(&p) else { continue };
                let v = p.value();
                check_grad(&p, &v, g)?;
                if self.non_finite != NonFinite::Unchecked && !kernels::all_finite(g)? {
                    return Ok(Some(p.name().to_string()));
                }
            }
        }
        Ok(None)
    }
}

/// Splits a whole state's entries among the parts: group-numbered scalars renumbered into each
/// part, per-parameter entries to the part that owns the parameter.
fn split_state(
    state: &OptimState,
    counts: &[usize],
    owners: &BTreeMap<String, usize>,
    switch: &[bool],
) -> Result<Vec<OptimState>> {
    let total: usize = counts.iter().sum();
    crate::rule::check_group_count(state, total)?;
    let mut out: Vec<OptimState> = Vec::new();
    let mut offset = 0;
    for &n in counts {
        out.push(OptimState {
            groups: state.groups[offset..offset + n].to_vec(),
            scalars: BTreeMap::new(),
            tensors: Vec::new(),
        });
        offset += n;
    }
    // The part owning `key`: the longest parameter name that prefixes it.
    let owner = |key: &str| -> Option<usize> {
        owners
            .iter()
            .filter(|(name, _)| {
                key.len() > name.len() && key.starts_with(name.as_str()) && key[name.len()..].starts_with('.')
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, &i)| i)
    };
    for (key, &x) in &state.scalars {
        if key == "train_mode" {
            for (part, _) in out.iter_mut().zip(switch).filter(|(_, s)| **s) {
                part.scalars.insert(key.clone(), x);
            }
            continue;
        }
        if let Some(rest) = key.strip_prefix("group.") {
            if let Some((g, tail)) = rest.split_once('.') {
                if let Ok(mut g) = g.parse::<usize>() {
                    for (i, &n) in counts.iter().enumerate() {
                        if g < n {
                            out[i].scalars.insert(format!("group.{g}.{tail}"), x);
                            break;
                        }
                        g -= n;
                    }
                    continue;
                }
            }
        }
        let i = owner(key).ok_or_else(|| Error::State(format!("unexpected scalar `{key}`")))?;
        out[i].scalars.insert(key.clone(), x);
    }
    for (key, t) in &state.tensors {
        let i = owner(key).ok_or_else(|| {
            Error::State(format!("unexpected entry `{key}`: no parameter of this optimizer has that name"))
        })?;
        out[i].tensors.push((key.clone(), t.clone()));
    }
    Ok(out)
}

impl Optimizer for Mixed {
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        let (part, g) = self.locate(group)?;
        self.parts[part].group_spec(g)
    }

    fn params(&self) -> Vec<Param> {
        self.parts.iter().flat_map(|p| p.params()).collect()
    }

    fn step(&mut self, grads: &Grads) -> Result<StepOutcome> {
        if let Some(param) = self.check(grads)? {
            return match self.non_finite {
                NonFinite::Error => Err(Error::NonFiniteGradient { param }),
                NonFinite::Skip | NonFinite::Unchecked => Ok(StepOutcome::Skipped { param }),
            };
        }
        for part in &mut self.parts {
            part.step(grads)?;
        }
        Ok(StepOutcome::Applied)
    }

    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        let (part, g) = self.locate(group)?;
        self.parts[part].group_option(g, key)
    }

    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        let n = self.group_count();
        let (part, g) = self
            .locate(group)
            .ok_or_else(|| Error::InvalidArgument(format!("no parameter group {group} (there are {n})")))?;
        self.parts[part].set_group_option(g, key, value)
    }

    /// A spec with an optimizer's name (`adamw:lr=1e-3`) adds a part of its own; options alone
    /// (`lr=0.1`) add a group to the first part, overriding its first group's options.
    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        let existing = self.params();
        check_unique_params(&params, existing.iter())?;
        let named = options.contains(':') || crate::names().iter().any(|n| n == options.trim());
        if named {
            let mut part = crate::from_spec(options, params)?;
            let name = part.group_spec(0).map(|s| s.name).unwrap_or_default();
            if CLOSURE_DRIVEN.contains(&name.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "`{name}` evaluates the loss several times a step and cannot be one part of a mixed \
                     optimizer"
                )));
            }
            part.configure(Setting::NonFinite(NonFinite::Unchecked))?;
            self.parts.push(part);
            Ok(())
        } else {
            self.parts[0].add_param_group(params, options)
        }
    }

    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        for part in &self.parts {
            if part.params().iter().any(|p| p.id() == param.id()) {
                return part.buffer(param, name);
            }
        }
        Ok(None)
    }

    fn export_state(&self) -> Result<OptimState> {
        let mut out = OptimState { groups: Vec::new(), scalars: BTreeMap::new(), tensors: Vec::new() };
        let mut offset = 0;
        for part in &self.parts {
            let s = part.export_state()?;
            for (key, x) in s.scalars {
                let renamed =
                    key.strip_prefix("group.").and_then(|rest| rest.split_once('.')).and_then(|(g, tail)| {
                        g.parse::<usize>().ok().map(|g| format!("group.{}.{tail}", g + offset))
                    });
                out.scalars.insert(renamed.unwrap_or(key), x);
            }
            offset += s.groups.len();
            out.groups.extend(s.groups);
            out.tensors.extend(s.tensors);
        }
        Ok(out)
    }

    fn import_state(&mut self, state: &OptimState) -> Result<()> {
        let switch: Vec<bool> =
            self.parts.iter().map(|p| p.group_option(0, "train_mode").is_some()).collect();
        let pieces = split_state(state, &self.group_counts(), &self.owners(), &switch)?;
        // All or nothing: a part that refuses its piece puts back the parts before it.
        let backups = self.parts.iter().map(|p| p.export_state()).collect::<Result<Vec<_>>>()?;
        for (i, piece) in pieces.iter().enumerate() {
            if let Err(err) = self.parts[i].import_state(piece) {
                for (part, backup) in self.parts.iter_mut().zip(&backups).take(i) {
                    part.import_state(backup)?;
                }
                return Err(err);
            }
        }
        Ok(())
    }

    fn configure(&mut self, setting: Setting) -> Result<()> {
        match setting {
            Setting::NonFinite(policy) => {
                self.non_finite = policy;
                Ok(())
            }
            Setting::Path(_) => {
                for part in &mut self.parts {
                    part.configure(setting)?;
                }
                Ok(())
            }
            Setting::Train(train) => {
                for i in 0..self.parts.len() {
                    if let Err(err) = self.parts[i].configure(setting) {
                        for part in self.parts.iter_mut().take(i) {
                            part.configure(Setting::Train(!train))?;
                        }
                        return Err(err);
                    }
                }
                Ok(())
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_spec;
    use candle_core::{DType, Device};
    use taper_autograd::ParamStore;

    fn setup() -> (ParamStore, Grads) {
        let mut store = ParamStore::new();
        let dev = Device::Cpu;
        let w = store.insert("w", Tensor::new(&[[1.0f64, -2.0], [0.5, 3.0]], &dev).unwrap()).unwrap();
        let b = store.insert("b", Tensor::new(&[0.5f64, 0.25], &dev).unwrap()).unwrap();
        let mut grads = Grads::default();
        grads.set(&w, Tensor::new(&[[0.1f64, 0.2], [-0.3, 0.4]], &dev).unwrap());
        grads.set(&b, Tensor::new(&[1.0f64, -1.0], &dev).unwrap());
        (store, grads)
    }

    fn mixed(store: &ParamStore) -> Mixed {
        let ps = store.params();
        Mixed::new(vec![
            from_spec("muon:lr=0.02,ns_dtype=native", vec![ps[0].clone()]).unwrap(),
            from_spec("adamw:lr=0.1", vec![ps[1].clone()]).unwrap(),
        ])
        .unwrap()
    }

    fn values(store: &ParamStore) -> Vec<Vec<f64>> {
        store.params().iter().map(|p| p.value().flatten_all().unwrap().to_vec1().unwrap()).collect()
    }

    #[test]
    fn each_part_steps_as_it_would_alone() {
        let (store, grads) = setup();
        let mut opt = mixed(&store);
        opt.step(&grads).unwrap();
        let (alone, _) = setup();
        let ps = alone.params();
        let mut muon = from_spec("muon:lr=0.02,ns_dtype=native", vec![ps[0].clone()]).unwrap();
        let mut adamw = from_spec("adamw:lr=0.1", vec![ps[1].clone()]).unwrap();
        muon.step(&grads_for(&alone, &grads, &store)).unwrap();
        adamw.step(&grads_for(&alone, &grads, &store)).unwrap();
        assert_eq!(values(&store), values(&alone));
    }

    /// The same gradients keyed by `to`'s parameters.
    fn grads_for(to: &ParamStore, grads: &Grads, from: &ParamStore) -> Grads {
        let mut out = Grads::default();
        for (a, b) in to.params().iter().zip(from.params()) {
            out.set(a, grads.get(b).unwrap().clone());
        }
        out
    }

    #[test]
    fn groups_span_the_parts_and_schedulers_reach_each() {
        let (store, _) = setup();
        let mut opt = mixed(&store);
        let o: &mut dyn Optimizer = &mut opt;
        assert_eq!(o.num_groups(), 2);
        assert_eq!(o.group_spec(0).unwrap().name, "muon");
        assert_eq!(o.group_spec(1).unwrap().name, "adamw");
        o.set_group_learning_rate(1, 0.5).unwrap();
        assert_eq!(o.group_learning_rate(1), Some(0.5));
        assert_eq!(o.group_learning_rate(0), Some(0.02));
        assert!(o.set_group_learning_rate(2, 0.5).unwrap_err().to_string().contains("no parameter group 2"));
    }

    #[test]
    fn a_bad_gradient_in_a_later_part_moves_no_part() {
        let (store, mut grads) = setup();
        let mut opt = mixed(&store);
        let before = values(&store);
        let b = store.get("b").unwrap().clone();
        grads.set(&b, Tensor::new(&[f64::NAN, 1.0], &Device::Cpu).unwrap());
        assert!(matches!(opt.step(&grads), Err(Error::NonFiniteGradient { .. })));
        assert_eq!(values(&store), before);
        grads.set(&b, Tensor::new(&[1.0f32, 1.0], &Device::Cpu).unwrap());
        assert!(matches!(opt.step(&grads), Err(Error::GradientMismatch { .. })));
        assert_eq!(values(&store), before);
        assert!(opt.export_state().unwrap().tensors.is_empty());
    }

    #[test]
    fn state_round_trips_and_a_foreign_state_changes_nothing() {
        let (store, grads) = setup();
        let mut opt = mixed(&store);
        opt.step(&grads).unwrap();
        opt.set_group_option(1, "lr", 0.3).unwrap();
        let saved = opt.export_state().unwrap();
        assert_eq!(saved.scalars.get("group.1.lr"), Some(&0.3));
        assert!(saved.tensors.iter().any(|(k, _)| k == "w.momentum_buffer"));
        assert!(saved.tensors.iter().any(|(k, _)| k == "b.exp_avg_sq"));
        let mut fresh = mixed(&store);
        fresh.import_state(&saved).unwrap();
        assert_eq!(format!("{:?}", fresh.export_state().unwrap().scalars), format!("{:?}", saved.scalars));
        // A state whose second group is another optimizer's: refused, the first part untouched.
        let mut foreign = saved.clone();
        foreign.groups[1] = "sgd:lr=0.1".into();
        let mut other = mixed(&store);
        other.step(&grads).unwrap();
        let kept = format!("{:?}", other.export_state().unwrap().scalars);
        assert!(other.import_state(&foreign).is_err());
        assert_eq!(format!("{:?}", other.export_state().unwrap().scalars), kept);
    }

    #[test]
    fn bad_parts_are_refused() {
        let (store, _) = setup();
        let ps = store.params();
        assert!(Mixed::new(Vec::new()).is_err());
        let twice = Mixed::new(vec![
            from_spec("sgd:lr=0.1", vec![ps[0].clone()]).unwrap(),
            from_spec("adam", vec![ps[0].clone()]).unwrap(),
        ]);
        assert!(twice.unwrap_err().to_string().contains("more than one place"));
        let lbfgs = Mixed::new(vec![from_spec("lbfgs", vec![ps[0].clone()]).unwrap()]);
        assert!(lbfgs.unwrap_err().to_string().contains("several times a step"));
        let _ = DType::F64;
    }

    #[test]
    fn by_rule_and_named_groups_add_parts() {
        let (store, _) = setup();
        let mut opt =
            Mixed::by_rule(&store.params()[..1], |p| usize::from(p.dims().len() < 2), &["muon", "adamw"])
                .unwrap();
        assert_eq!(opt.parts().len(), 1);
        opt.add_param_group(vec![store.params()[1].clone()], "adamw:lr=1e-3").unwrap();
        assert_eq!(opt.parts().len(), 2);
        assert_eq!(opt.group_spec(1).unwrap().name, "adamw");
    }
}
