//! The textual optimizer spec: `name:key=value,key=value`, the one way a user names an
//! optimizer on a command line and in a checkpoint. Names and keys are PyTorch's.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// An option value: a number, a boolean or a word.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A number (`0.01`, `1e-8`).
    Num(f64),
    /// A boolean (`true`, `false`).
    Bool(bool),
    /// A word from a fixed set (`adjust_lr_fn=match_rms_adamw`).
    Word(&'static str),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Rust prints the shortest decimal that parses back to the same f64; small and huge
            // magnitudes read better in exponent form (1e-8, not 0.00000001).
            Value::Num(x) if *x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e16) => write!(f, "{x:e}"),
            Value::Num(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Word(w) => write!(f, "{w}"),
        }
    }
}

/// A parsed optimizer spec: a name and `key=value` options, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimSpec {
    /// The optimizer's name (`rmsprop`).
    pub name: String,
    /// The options, as written (values still text: each optimizer parses its own).
    pub options: Vec<(String, String)>,
}

impl OptimSpec {
    /// Parses `name` or `name:key=value,key=value`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |msg: &str| Error::Spec { spec: spec.to_string(), msg: msg.to_string() };
        let spec_t = spec.trim();
        let (name, rest) = match spec_t.split_once(':') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (spec_t, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(
                "expected `name` or `name:key=value,...` with a name of letters, digits and `_`",
            ));
        }
        let mut options = Vec::new();
        if let Some(rest) = rest {
            for item in split_top_level(rest).map_err(|msg| bad(&msg))? {
                let item = item.trim();
                if item.is_empty() {
                    return Err(bad("empty option (two commas in a row, or a trailing comma)"));
                }
                let (k, v) = item
                    .split_once('=')
                    .ok_or_else(|| bad(&format!("option `{item}` is not `key=value`")))?;
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() || v.is_empty() {
                    return Err(bad(&format!("option `{item}` is not `key=value`")));
                }
                if options.iter().any(|(seen, _): &(String, String)| seen == k) {
                    return Err(bad(&format!("option `{k}` given twice")));
                }
                options.push((k.to_string(), v.to_string()));
            }
        }
        Ok(Self { name: name.to_ascii_lowercase(), options })
    }
}

/// Splits `text` at the commas outside brackets: `a=1,b=[2,3],c=x(d=4,e=5)` gives three items.
/// Unbalanced brackets are an error.
pub fn split_top_level(text: &str) -> std::result::Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| format!("unbalanced `{c}` in `{text}`"))?
            }
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unclosed bracket in `{text}`"));
    }
    items.push(&text[start..]);
    Ok(items)
}

impl OptimSpec {
    /// Parses a comma-separated list of specs, `rmsprop:lr=0.4,gamma=0.9,adagrad:lr=0.4,sgd`: a
    /// new spec starts at every item that has no `=` or has a `:` before its `=`; the other
    /// items are options of the spec before them.
    pub fn parse_list(list: &str) -> Result<Vec<Self>> {
        let mut groups: Vec<String> = Vec::new();
        for item in list.split(',') {
            let t = item.trim();
            let starts_spec = match (t.find(':'), t.find('=')) {
                (_, None) => true,
                (Some(c), Some(e)) => c < e,
                (None, Some(_)) => false,
            };
            match groups.last_mut() {
                Some(last) if !starts_spec => {
                    last.push(',');
                    last.push_str(t);
                }
                _ if !starts_spec => {
                    return Err(Error::Spec {
                        spec: list.to_string(),
                        msg: format!("option `{t}` before any optimizer name"),
                    })
                }
                _ => groups.push(t.to_string()),
            }
        }
        groups.iter().map(|g| Self::parse(g)).collect()
    }
}

impl FromStr for OptimSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for OptimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        for (i, (k, v)) in self.options.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { ':' } else { ',' })?;
        }
        Ok(())
    }
}

/// Reads an optimizer's options out of a spec, validating each and rejecting leftovers.
///
/// Each optimizer's `from_options` asks for its keys with their defaults and allowed ranges, then
/// calls [`Options::finish`], which fails on any key nobody asked for.
pub struct Options {
    optimizer: &'static str,
    items: Vec<(String, String)>,
    asked: Vec<&'static str>,
}

impl Options {
    /// The options of `spec` for the optimizer `optimizer`.
    pub fn new(optimizer: &'static str, spec: &OptimSpec) -> Self {
        Self { optimizer, items: spec.options.clone(), asked: Vec::new() }
    }

    fn take(&mut self, keys: &[&'static str]) -> Option<(String, String)> {
        self.asked.push(keys[0]);
        let i = self.items.iter().position(|(k, _)| keys.contains(&k.as_str()))?;
        Some(self.items.remove(i))
    }

    fn invalid(&self, key: &str, value: &str, allowed: impl Into<String>) -> Error {
        Error::InvalidValue {
            optimizer: self.optimizer,
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// A number under `key` (or one of its `aliases`), `default` when absent, checked by `ok`
    /// whose failure message is `allowed`.
    pub fn num(
        &mut self,
        key: &'static str,
        aliases: &[&'static str],
        default: f64,
        ok: impl Fn(f64) -> bool,
        allowed: &str,
    ) -> Result<f64> {
        let mut keys = vec![key];
        keys.extend_from_slice(aliases);
        let Some((k, text)) = self.take(&keys) else { return Ok(default) };
        let x: f64 =
            text.parse().map_err(|_| self.invalid(&k, &text, format!("expected a number; {allowed}")))?;
        if !x.is_finite() || !ok(x) {
            return Err(self.invalid(&k, &text, allowed));
        }
        Ok(x)
    }

    /// An optional number under `key` (or an alias): `None` when absent, `Some(None)` for the
    /// word `none` (no value: ADOPT's `clip_exp=none`), else `Some(Some(x))` checked by `ok`.
    pub fn opt_num(
        &mut self,
        key: &'static str,
        aliases: &[&'static str],
        ok: impl Fn(f64) -> bool,
        allowed: &str,
    ) -> Result<Option<Option<f64>>> {
        let mut keys = vec![key];
        keys.extend_from_slice(aliases);
        let Some((k, text)) = self.take(&keys) else { return Ok(None) };
        if text.eq_ignore_ascii_case("none") {
            return Ok(Some(None));
        }
        let x: f64 = text
            .parse()
            .map_err(|_| self.invalid(&k, &text, format!("expected a number or none; {allowed}")))?;
        if !x.is_finite() || !ok(x) {
            return Err(self.invalid(&k, &text, allowed));
        }
        Ok(Some(Some(x)))
    }

    /// A number under `key` that has no default (PyTorch requires the argument): absent is an
    /// error naming it.
    pub fn required(&mut self, key: &'static str, ok: impl Fn(f64) -> bool, allowed: &str) -> Result<f64> {
        if !self.items.iter().any(|(k, _)| k == key) {
            self.asked.push(key);
            return Err(self.invalid(key, "(missing)", format!("`{key}` is required; {allowed}")));
        }
        self.num(key, &[], f64::NAN, ok, allowed)
    }

    /// A boolean under `key`, `default` when absent.
    pub fn flag(&mut self, key: &'static str, default: bool) -> Result<bool> {
        let Some((k, text)) = self.take(&[key]) else { return Ok(default) };
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(self.invalid(&k, &text, "expected true or false")),
        }
    }

    /// The learning rate `lr` (finite, ≥ 0).
    pub fn lr(&mut self, default: f64) -> Result<f64> {
        self.num("lr", &[], default, non_negative, "lr must be >= 0")
    }

    /// The L2 penalty `weight_decay` (≥ 0).
    pub fn weight_decay(&mut self, default: f64) -> Result<f64> {
        self.num("weight_decay", &[], default, non_negative, "weight_decay must be >= 0")
    }

    /// The stabilizer `eps` (> 0).
    pub fn eps(&mut self, default: f64) -> Result<f64> {
        self.num("eps", &[], default, positive, "eps must be > 0")
    }

    /// A decay rate in `[0, 1)` (alpha, rho, betas) under `key` or an alias.
    pub fn decay(&mut self, key: &'static str, aliases: &[&'static str], default: f64) -> Result<f64> {
        let allowed = match aliases.first() {
            Some(alias) => format!("{key} (alias {alias}) must be in [0, 1)"),
            None => format!("{key} must be in [0, 1)"),
        };
        self.num(key, aliases, default, unit_interval, &allowed)
    }

    /// A word under `key`, one of `allowed` (`anneal_strategy=linear`), `default` when absent.
    pub fn word(
        &mut self,
        key: &'static str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> Result<&'static str> {
        let Some((k, text)) = self.take(&[key]) else { return Ok(default) };
        match allowed.iter().find(|w| **w == text) {
            Some(w) => Ok(w),
            None => Err(self.invalid(&k, &text, format!("expected one of {}", allowed.join(", ")))),
        }
    }

    /// A whole number `>= min` under `key`, `default` when absent.
    pub fn whole(&mut self, key: &'static str, default: u64, min: u64) -> Result<u64> {
        let allowed = format!("{key} must be a whole number >= {min}");
        let x = self.num(
            key,
            &[],
            default as f64,
            |x| x.fract() == 0.0 && x >= min as f64 && x < 9.0e15,
            &allowed,
        )?;
        Ok(x as u64)
    }

    /// The items of a bracketed list under `key` (`milestones=[30,80]`, or nested specs
    /// `schedulers=[linear(total_iters=5),cosine(t_max=95)]`), as text; `None` when absent.
    pub fn list(&mut self, key: &'static str) -> Result<Option<Vec<String>>> {
        let Some((k, text)) = self.take(&[key]) else { return Ok(None) };
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| self.invalid(&k, &text, "expected a list in brackets, `[a,b]`"))?;
        if inner.trim().is_empty() {
            return Ok(Some(Vec::new()));
        }
        let items = split_top_level(inner).map_err(|msg| self.invalid(&k, &text, msg))?;
        Ok(Some(items.into_iter().map(|i| i.trim().to_string()).collect()))
    }

    /// Numbers under `key`: one (`max_lr=0.1`, for every parameter group) or a list, one per
    /// group (`max_lr=[0.1,0.01]`); `default` when absent (`None`: required). Each is checked by
    /// `ok`.
    pub fn nums(
        &mut self,
        key: &'static str,
        default: Option<f64>,
        ok: impl Fn(f64) -> bool,
        allowed: &str,
    ) -> Result<Vec<f64>> {
        let present = self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let Some(text) = present else {
            self.asked.push(key);
            return match default {
                Some(d) => Ok(vec![d]),
                None => Err(self.invalid(key, "(missing)", format!("`{key}` is required; {allowed}"))),
            };
        };
        let items = if text.starts_with('[') {
            self.list(key)?.unwrap_or_default()
        } else {
            self.take(&[key]);
            vec![text.clone()]
        };
        if items.is_empty() {
            return Err(self.invalid(key, &text, "expected at least one number"));
        }
        items
            .iter()
            .map(|t| match t.parse::<f64>() {
                Ok(x) if x.is_finite() && ok(x) => Ok(x),
                _ => Err(self.invalid(key, &text, allowed)),
            })
            .collect()
    }

    /// Whether the spec gives `key` (not yet read).
    pub fn has(&self, key: &str) -> bool {
        self.items.iter().any(|(k, _)| k == key)
    }

    /// Fails on any option no one asked for.
    pub fn finish(self) -> Result<()> {
        match self.items.first() {
            None => Ok(()),
            Some((k, _)) => Err(Error::UnknownKey {
                optimizer: self.optimizer,
                key: k.clone(),
                known: self.asked.join(", "),
            }),
        }
    }
}

/// Allowed range `lr ≥ 0`.
pub fn non_negative(x: f64) -> bool {
    x >= 0.0
}

/// Allowed range `0 ≤ x < 1` (decay rates: alpha, rho, betas).
pub fn unit_interval(x: f64) -> bool {
    (0.0..1.0).contains(&x)
}

/// Allowed range `x > 0` (eps).
pub fn positive(x: f64) -> bool {
    x > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s = OptimSpec::parse(" RMSprop: lr=0.01 , alpha=0.9,eps_in_sqrt=true").unwrap();
        assert_eq!(s.name, "rmsprop");
        assert_eq!(s.options[0], ("lr".into(), "0.01".into()));
        assert_eq!(s.to_string(), "rmsprop:lr=0.01,alpha=0.9,eps_in_sqrt=true");
        assert_eq!(OptimSpec::parse("adam").unwrap().options, vec![]);
    }

    #[test]
    fn parses_lists_of_specs() {
        let l = OptimSpec::parse_list("rmsprop:lr=0.4,gamma=0.9,adagrad:lr=0.4,sgd,adam:lr=1").unwrap();
        let s: Vec<String> = l.iter().map(|s| s.to_string()).collect();
        assert_eq!(s, ["rmsprop:lr=0.4,gamma=0.9", "adagrad:lr=0.4", "sgd", "adam:lr=1"]);
        assert!(OptimSpec::parse_list("lr=0.1,sgd").is_err());
        assert!(OptimSpec::parse_list("sgd,,adam").is_err());
    }

    #[test]
    fn malformed_specs_are_errors() {
        for bad in
            ["", ":lr=1", "adam:", "adam:lr", "adam:lr=", "adam:lr=1,,eps=2", "adam:lr=1,lr=2", "ad am"]
        {
            let err = OptimSpec::parse(bad).unwrap_err();
            assert!(matches!(err, Error::Spec { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn options_validate_and_reject_leftovers() {
        let spec = OptimSpec::parse("x:lr=-1").unwrap();
        let mut o = Options::new("x", &spec);
        let err = o.num("lr", &[], 0.1, non_negative, "must be >= 0").unwrap_err().to_string();
        assert!(err.contains("lr=-1") && err.contains(">= 0"), "{err}");
        let spec = OptimSpec::parse("x:gamma=0.9,foo=1").unwrap();
        let mut o = Options::new("x", &spec);
        assert_eq!(o.num("alpha", &["gamma"], 0.99, unit_interval, "in [0, 1)").unwrap(), 0.9);
        let err = o.finish().unwrap_err().to_string();
        assert!(err.contains("`foo`") && err.contains("alpha"), "{err}");
        let spec = OptimSpec::parse("x:centered=maybe").unwrap();
        assert!(Options::new("x", &spec).flag("centered", false).is_err());
        let spec = OptimSpec::parse("x:lr=abc").unwrap();
        assert!(Options::new("x", &spec).num("lr", &[], 0.1, non_negative, "").is_err());
        let spec = OptimSpec::parse("x:lr=nan").unwrap();
        assert!(Options::new("x", &spec).num("lr", &[], 0.1, non_negative, "").is_err());
    }
}
