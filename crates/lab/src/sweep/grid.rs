//! Grids of optimizer specs. Any option of a spec may hold a list in brackets or a generated
//! range, and the grid is the cartesian product of them, the first option varying slowest:
//!
//! * `adam:lr=[1e-4,1e-3,1e-2],beta2=[0.99,0.999]`: six specs;
//! * `sgd:lr=logspace(1e-4,1,9),momentum=0.9`: nine learning rates `10^(-4 + k/2)`;
//! * `rmsprop:alpha=linspace(0.8,0.99,3)`: `0.8, 0.895, 0.99`.
//!
//! A spec without lists is a grid of one. Generated values are rounded to 10 significant digits
//! (`logspace(1e-4,1,9)` gives `0.001`, not `0.0010000000000000002`).

use crate::optim::{split_top_level, OptimSpec};

/// A grid that cannot be expanded: what is wrong, in words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("grid `{grid}`: {msg}")]
pub struct GridError {
    /// The grid as written.
    pub grid: String,
    /// What is wrong.
    pub msg: String,
}

/// One point of a grid: the spec, and the value each swept option takes there.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPoint {
    /// The spec with every list replaced by one of its values (`adam:lr=0.001,beta2=0.99`).
    pub spec: String,
    /// `(option, value)` of each option that held a list or range, in the order written.
    pub swept: Vec<(String, String)>,
}

/// Swept options and their values (`lr=0.01`).
pub type Labels = Vec<(String, String)>;

/// A parsed grid: the optimizer's name, each option's values, and which options are swept.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The optimizer's name.
    pub name: String,
    /// Each option with its values (one value for a fixed option).
    pub options: Vec<(String, Vec<String>)>,
    /// Whether each option was written as a list or range.
    pub swept: Vec<bool>,
    /// For an option that nests a grid (a wrapper's `optimizer=adam(lr=[0.01,0.1])`), each
    /// value's own swept options (`lr=0.01`), which the point reports in its place.
    pub nested: Vec<Option<Vec<Labels>>>,
}

impl Grid {
    /// Parses `name:key=value,...` where any value may be `[a,b,...]`, `logspace(a,b,n)` or
    /// `linspace(a,b,n)`.
    pub fn parse(text: &str) -> Result<Self, GridError> {
        let bad = |msg: String| GridError { grid: text.to_string(), msg };
        let spec = OptimSpec::parse(text).map_err(|e| bad(e.to_string()))?;
        let mut options = Vec::new();
        let mut swept = Vec::new();
        let mut nested = Vec::new();
        for (key, value) in &spec.options {
            if let Some(inner) = nested_grid(value).map_err(|m| bad(format!("option `{key}`: {m}")))? {
                let points = inner.points();
                let name = &inner.name;
                let values = points
                    .iter()
                    .map(|p| match p.spec.split_once(':') {
                        Some((_, opts)) => format!("{name}({opts})"),
                        None => name.clone(),
                    })
                    .collect();
                options.push((key.clone(), values));
                swept.push(true);
                nested.push(Some(points.into_iter().map(|p| p.swept).collect()));
                continue;
            }
            let (values, is_swept) = values(value).map_err(|m| bad(format!("option `{key}`: {m}")))?;
            options.push((key.clone(), values));
            swept.push(is_swept);
            nested.push(None);
        }
        Ok(Self { name: spec.name, options, swept, nested })
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.options.iter().map(|(_, v)| v.len()).product()
    }

    /// Whether the grid has no point (never, once parsed: every list holds a value).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spec with the swept options left out (`sgd:momentum=0.9` for
    /// `sgd:lr=[0.1,0.01],momentum=0.9`): what the points have in common.
    pub fn family(&self) -> String {
        let fixed: Vec<String> = self
            .options
            .iter()
            .zip(&self.swept)
            .filter(|(_, s)| !**s)
            .map(|((k, v), _)| format!("{k}={}", v[0]))
            .collect();
        if fixed.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, fixed.join(","))
        }
    }

    /// Every point, the first option varying slowest.
    pub fn points(&self) -> Vec<GridPoint> {
        let mut out = Vec::with_capacity(self.len());
        let mut index = vec![0usize; self.options.len()];
        loop {
            let chosen: Vec<(&str, &str)> =
                self.options.iter().zip(&index).map(|((k, v), &i)| (k.as_str(), v[i].as_str())).collect();
            let spec = if chosen.is_empty() {
                self.name.clone()
            } else {
                let opts: Vec<String> = chosen.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}:{}", self.name, opts.join(","))
            };
            let swept = chosen
                .iter()
                .zip(&self.swept)
                .zip(self.nested.iter().zip(&index))
                .filter(|((_, s), _)| **s)
                .flat_map(|(((k, v), _), (nested, &i))| match nested {
                    Some(labels) => labels[i].clone(),
                    None => vec![(k.to_string(), v.to_string())],
                })
                .collect();
            out.push(GridPoint { spec, swept });
            // The last option varies fastest.
            let mut d = self.options.len();
            loop {
                if d == 0 {
                    return out;
                }
                d -= 1;
                index[d] += 1;
                if index[d] < self.options[d].1.len() {
                    break;
                }
                index[d] = 0;
            }
        }
    }
}

/// Most points one option may generate (a typo like `logspace(1e-4,1,9000)` is an error, not
/// a week of runs).
const MAX_VALUES: usize = 1000;

/// A nested spec with lists or ranges in it (`adam(lr=[0.01,0.1])`, a wrapper's inner
/// optimizer), as a grid of its own; `None` for any other value.
fn nested_grid(text: &str) -> Result<Option<Grid>, String> {
    let t = text.trim();
    let Some((name, rest)) = t.split_once('(') else { return Ok(None) };
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || !rest.contains('[') && !rest.contains("space(")
    {
        return Ok(None);
    }
    let inner = rest.strip_suffix(')').ok_or_else(|| format!("`{t}`: a nested optimizer ends with `)`"))?;
    Grid::parse(&format!("{name}:{inner}")).map(Some).map_err(|e| e.msg)
}

/// The values of one option and whether it was a list or range.
fn values(text: &str) -> Result<(Vec<String>, bool), String> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("a list must end with `]`")?;
        if inner.trim().is_empty() {
            return Err("empty list `[]`: a grid needs at least one value".into());
        }
        let items = split_top_level(inner)?;
        let items: Vec<String> = items.iter().map(|i| i.trim().to_string()).collect();
        if let Some(empty) = items.iter().position(String::is_empty) {
            return Err(format!("empty item {} in `{t}`", empty + 1));
        }
        return Ok((items, true));
    }
    for (name, log) in [("logspace", true), ("linspace", false)] {
        if let Some(args) = t.strip_prefix(name) {
            let args = args
                .trim()
                .strip_prefix('(')
                .and_then(|a| a.strip_suffix(')'))
                .ok_or(format!("expected `{name}(start,stop,count)`"))?;
            return range(args, log, name).map(|v| (v, true));
        }
    }
    if t.contains('[') || t.contains(']') {
        return Err(format!("`{t}`: a list is written `[a,b,...]`"));
    }
    Ok((vec![t.to_string()], false))
}

/// `count` values from `start` to `stop` (both included), evenly spaced on a log or linear scale.
fn range(args: &str, log: bool, name: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let [a, b, n] = parts[..] else {
        return Err(format!("`{name}` takes three arguments: start, stop, count"));
    };
    let num = |s: &str| -> Result<f64, String> {
        s.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or(format!("`{s}` is not a finite number"))
    };
    let (a, b) = (num(a)?, num(b)?);
    let n: usize = n.parse().map_err(|_| format!("count `{n}` is not a whole number"))?;
    if n == 0 {
        return Err(format!("`{name}` with count 0 is an empty grid"));
    }
    if n > MAX_VALUES {
        return Err(format!("count {n} is more than {MAX_VALUES} values"));
    }
    if log && (a <= 0.0 || b <= 0.0) {
        return Err(format!("`logspace` needs positive bounds, got {a} and {b}"));
    }
    let at = |k: usize| -> f64 {
        let f = if n == 1 { 0.0 } else { k as f64 / (n - 1) as f64 };
        if k + 1 == n && n > 1 {
            b
        } else if log {
            10f64.powf(a.log10() + f * (b.log10() - a.log10()))
        } else {
            a + f * (b - a)
        }
    };
    Ok((0..n).map(|k| crate::optim::Value::Num(round_sig(at(k))).to_string()).collect())
}

/// `x` rounded to 10 significant digits.
pub(crate) fn round_sig(x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    format!("{x:.9e}").parse().unwrap_or(x)
}

/// Expands a grid into its specs (see the module's documentation).
pub fn expand(text: &str) -> Result<Vec<GridPoint>, GridError> {
    Ok(Grid::parse(text)?.points())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(text: &str) -> Vec<String> {
        expand(text).unwrap().into_iter().map(|p| p.spec).collect()
    }

    #[test]
    fn lists_make_a_cartesian_product_first_option_slowest() {
        assert_eq!(
            specs("adam:lr=[1e-4,1e-3],beta2=[0.99,0.999]"),
            [
                "adam:lr=1e-4,beta2=0.99",
                "adam:lr=1e-4,beta2=0.999",
                "adam:lr=1e-3,beta2=0.99",
                "adam:lr=1e-3,beta2=0.999"
            ]
        );
        let g = Grid::parse("sgd:lr=[0.1,0.01],momentum=0.9").unwrap();
        assert_eq!((g.len(), g.family()), (2, "sgd:momentum=0.9".to_string()));
        let p = g.points();
        assert_eq!(p[1].swept, [("lr".to_string(), "0.01".to_string())]);
        assert_eq!(specs("sgd"), ["sgd"]);
        assert_eq!(specs("sgd:lr=0.1"), ["sgd:lr=0.1"]);
        // A wrapper's inner optimizer sweeps too, its options reported as the point's own.
        let g = Grid::parse("lookahead:k=5,optimizer=adam(lr=[0.1,0.01],beta2=0.99)").unwrap();
        let points = g.points();
        assert_eq!(
            points.iter().map(|p| p.spec.as_str()).collect::<Vec<_>>(),
            [
                "lookahead:k=5,optimizer=adam(lr=0.1,beta2=0.99)",
                "lookahead:k=5,optimizer=adam(lr=0.01,beta2=0.99)"
            ]
        );
        assert_eq!(points[1].swept, [("lr".to_string(), "0.01".to_string())]);
        assert_eq!(g.family(), "lookahead:k=5");
        assert_eq!(Grid::parse("adam").unwrap().family(), "adam");
    }

    #[test]
    fn ranges_are_rounded_and_end_on_their_bounds() {
        assert_eq!(
            specs("sgd:lr=logspace(1e-4,1,9)"),
            [
                "sgd:lr=0.0001",
                "sgd:lr=0.000316227766",
                "sgd:lr=0.001",
                "sgd:lr=0.00316227766",
                "sgd:lr=0.01",
                "sgd:lr=0.0316227766",
                "sgd:lr=0.1",
                "sgd:lr=0.316227766",
                "sgd:lr=1"
            ]
        );
        assert_eq!(
            specs("rmsprop:alpha=linspace(0.8,0.99,3)"),
            ["rmsprop:alpha=0.8", "rmsprop:alpha=0.895", "rmsprop:alpha=0.99"]
        );
        assert_eq!(specs("sgd:lr=logspace(0.1,0.1,1)"), ["sgd:lr=0.1"]);
    }

    #[test]
    fn malformed_and_empty_grids_are_errors() {
        for (bad, says) in [
            ("adam:lr=[]", "empty list"),
            ("adam:lr=[0.1,]", "empty item 2"),
            ("adam:lr=[0.1", "unclosed bracket"),
            ("adam:lr=0.1]", "unbalanced"),
            ("adam:lr=logspace(1e-4,1)", "three arguments"),
            ("adam:lr=logspace(0,1,3)", "positive bounds"),
            ("adam:lr=logspace(1e-4,1,0)", "empty grid"),
            ("adam:lr=logspace(1e-4,1,x)", "whole number"),
            ("adam:lr=linspace(a,1,3)", "not a finite number"),
            ("adam:lr=logspace(1e-4,1,100000)", "more than"),
            ("adam:lr=logspace 1e-4", "expected `logspace(start,stop,count)`"),
            ("adam:lr", "not `key=value`"),
            ("", "expected `name`"),
        ] {
            let e = expand(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
