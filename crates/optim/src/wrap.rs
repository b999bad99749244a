//! What the wrappers ([`crate::Lookahead`], [`crate::Sam`], and any written elsewhere) share:
//! the inner optimizer nested in their spec (`lookahead:k=6,alpha=0.5,optimizer=adam(lr=0.3)`),
//! their group specs, their options routed between them and the inner optimizer, and their
//! state split from the inner optimizer's. `docs/EXTENDING.md` writes a wrapper with them.

use crate::spec::OptimSpec;
use crate::{Error, Hyper, OptimState, Optimizer, Result};

/// A wrapper's own options and the inner optimizer's spec (`adam:lr=0.3`) from the wrapper's
/// spec, whose `optimizer=` option nests it as `name(key=value,...)`.
pub fn parse<H: Hyper>(spec: &OptimSpec) -> Result<(H, String)> {
    let mut own = spec.clone();
    let i = own.options.iter().position(|(k, _)| k == "optimizer").ok_or_else(|| Error::InvalidValue {
        optimizer: H::NAME,
        key: "optimizer".into(),
        value: "(missing)".into(),
        allowed: format!(
            "`{}` wraps an optimizer: give it as `optimizer=name(key=value,...)`, e.g. `optimizer=adam(lr=0.3)`",
            H::NAME
        ),
    })?;
    let (_, text) = own.options.remove(i);
    Ok((H::from_spec(&own)?, unnest(H::NAME, &text)?))
}

/// `adam(lr=0.3)` → `adam:lr=0.3`; `adam` stays.
fn unnest(wrapper: &'static str, text: &str) -> Result<String> {
    let text = text.trim();
    match text.split_once('(') {
        None => Ok(text.to_string()),
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(|| Error::InvalidValue {
                optimizer: wrapper,
                key: "optimizer".into(),
                value: text.to_string(),
                allowed: "expected `name` or `name(key=value,...)`".into(),
            })?;
            Ok(if inner.trim().is_empty() { name.to_string() } else { format!("{name}:{inner}") })
        }
    }
}

/// `adam:lr=0.3` → `adam(lr=0.3)`.
fn nest(spec: &OptimSpec) -> String {
    let text = spec.to_string();
    match text.split_once(':') {
        Some((name, options)) => format!("{name}({options})"),
        None => text,
    }
}

/// The wrapper's spec for one group: its own options, then the inner group's spec nested.
pub fn group_spec<H: Hyper>(own: &H, inner: &dyn Optimizer, group: usize) -> Option<OptimSpec> {
    let inner = inner.group_spec(group)?;
    let mut spec = own.to_spec();
    spec.options.push(("optimizer".into(), nest(&inner)));
    Some(spec)
}

/// Refuses wrappers that make no sense: SAM's two evaluations around a closure-driven optimizer
/// (L-BFGS, SAM), Lookahead's slow weights around Lookahead's.
pub fn check_nesting(wrapper: &'static str, inner: &dyn Optimizer) -> Result<()> {
    let name = inner.group_spec(0).map(|s| s.name).unwrap_or_default();
    let nonsense = match wrapper {
        "sam" => ["sam", "lbfgs"].contains(&name.as_str()),
        _ => name == wrapper,
    };
    if nonsense {
        return Err(Error::InvalidArgument(format!(
            "`{wrapper}` cannot wrap `{name}`: {}",
            if wrapper == "sam" {
                "SAM evaluates the loss twice a step and hands one gradient to its inner optimizer, which must step on a gradient"
            } else {
                "slow weights of slow weights are one slower average; use one lookahead with a larger k"
            }
        )));
    }
    Ok(())
}

/// A saved wrapper state split into the wrapper's options (from the first group's spec, which
/// every group shares) and the inner optimizer's state; `own` entries (`{param}.{buffer}`
/// tensors and scalars the wrapper keeps, told apart by `is_own`) are left for the caller.
pub fn split_state<H: Hyper>(
    saved: &OptimState,
    is_own: impl Fn(&str) -> bool,
) -> Result<(Option<H>, OptimState, OptimState)> {
    let mut own_options = None;
    let mut groups = Vec::new();
    for (gi, text) in saved.groups.iter().enumerate() {
        let spec = OptimSpec::parse(text)?;
        if spec.name != H::NAME {
            return Err(Error::State(format!(
                "it was saved by optimizer `{}` and this one is `{}`",
                spec.name,
                H::NAME
            )));
        }
        let (options, inner): (H, String) =
            parse(&spec).map_err(|e| Error::State(format!("group {gi}: {e}")))?;
        groups.push(inner);
        own_options.get_or_insert(options);
    }
    let mut inner = OptimState { groups, scalars: Default::default(), tensors: Vec::new() };
    let mut own = OptimState { groups: Vec::new(), scalars: Default::default(), tensors: Vec::new() };
    for (k, v) in &saved.scalars {
        let to = if is_own(k) { &mut own } else { &mut inner };
        to.scalars.insert(k.clone(), *v);
    }
    for (k, t) in &saved.tensors {
        let to = if is_own(k) { &mut own } else { &mut inner };
        to.tensors.push((k.clone(), t.clone()));
    }
    Ok((own_options, inner, own))
}

/// An option of one group: the inner optimizer's if it has one of that name, else the wrapper's.
pub fn group_option<H: Hyper>(own: &H, inner: &dyn Optimizer, group: usize, key: &str) -> Option<f64> {
    inner.group_option(group, key).or_else(|| inner.group_spec(group).and_then(|_| own.get(key)))
}

/// Sets an option of one group (the inner optimizer's if it has one of that name, else the
/// wrapper's, for every group), checked; an error changes nothing.
pub fn set_group_option<H: Hyper>(
    own: &mut H,
    inner: &mut dyn Optimizer,
    group: usize,
    key: &str,
    value: f64,
) -> Result<()> {
    if inner.group_option(group, key).is_some() || own.get(key).is_none() {
        return inner.set_group_option(group, key, value);
    }
    let mut next = own.clone();
    next.set(key, value)?;
    next.validate()?;
    *own = next;
    Ok(())
}
