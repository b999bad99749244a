//! The tape: a list of recorded nodes in the order they were computed.
//!
//! Because a node can only use values computed before it, the order of the list is already a
//! topological order: backward is one reverse loop, with no sort and no recursion.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use candle_core::{Shape, Tensor};

use crate::grads::Grads;
use crate::ops::Op;
use crate::param::{Param, ParamId};
use crate::var::{Track, Var};
use crate::{Error, Result};

/// What a node is: a parameter leaf or the result of an op.
pub(crate) enum NodeKind {
    Param(Param),
    Op(Op),
}

pub(crate) struct Node {
    kind: NodeKind,
    /// The node ids of the op's inputs, in the op's argument order; `None` for an input that
    /// needs no gradient (a constant, data, a frozen parameter).
    inputs: Vec<Option<usize>>,
    shape: Shape,
}

#[derive(Default)]
struct TapeInner {
    nodes: Vec<Node>,
    /// The leaf node of each parameter already on the tape, so that a parameter used twice
    /// accumulates into one gradient.
    param_nodes: HashMap<ParamId, usize>,
    /// Bumped each time the tape is consumed or cleared; values carry the generation they were
    /// recorded in, so a stale value cannot point at a reused node id.
    generation: u64,
    no_grad_depth: usize,
}

/// A define-by-run tape.
///
/// Values computed from parameters that entered the tape ([`Tape::param`]) are recorded as they
/// are computed; [`Var::backward`] walks the records once in reverse, releasing each node as soon
/// as its rule has run, and leaves the tape empty for the next step. Values computed only from
/// constants are never recorded. A tape is a cheap handle (clones share it) and belongs to one
/// thread.
#[derive(Clone, Default)]
pub struct Tape(Rc<RefCell<TapeInner>>);

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.0.borrow();
        f.debug_struct("Tape")
            .field("nodes", &inner.nodes.len())
            .field("generation", &inner.generation)
            .finish()
    }
}

/// Resets the no-grad depth when a [`Tape::no_grad`] scope ends, even by an early return.
struct NoGradGuard<'a>(&'a Tape);

impl Drop for NoGradGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.borrow_mut().no_grad_depth -= 1;
    }
}

impl Tape {
    /// An empty tape. (The first one made sets up the CPU for fast work, if nothing has:
    /// `taper_tensor::init_cpu`.)
    pub fn new() -> Self {
        taper_tensor::ensure_cpu();
        Self::default()
    }

    /// Brings a parameter onto the tape as a leaf. A parameter that does not require a gradient,
    /// or any parameter inside [`Tape::no_grad`], enters as a constant and is not recorded.
    pub fn param(&self, param: &Param) -> Var {
        let value = param.value();
        let mut inner = self.0.borrow_mut();
        if !param.requires_grad() || inner.no_grad_depth > 0 {
            return Var::constant(value);
        }
        let generation = inner.generation;
        let id = match inner.param_nodes.get(&param.id()) {
            Some(&id) => id,
            None => {
                let id = inner.nodes.len();
                inner.nodes.push(Node {
                    kind: NodeKind::Param(param.clone()),
                    inputs: Vec::new(),
                    shape: value.shape().clone(),
                });
                inner.param_nodes.insert(param.id(), id);
                id
            }
        };
        Var::tracked(value, Track { tape: self.clone(), id, generation })
    }

    /// Runs `f` with recording switched off: every value computed inside is a constant. Use it
    /// for evaluation and for optimizer arithmetic.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.borrow_mut().no_grad_depth += 1;
        let _guard = NoGradGuard(self);
        f()
    }

    /// Whether recording is switched off (inside [`Tape::no_grad`]).
    pub fn is_no_grad(&self) -> bool {
        self.0.borrow().no_grad_depth > 0
    }

    /// The number of recorded nodes (parameter leaves and ops).
    pub fn len(&self) -> usize {
        self.0.borrow().nodes.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every record (for example after a forward pass whose result is not differentiated).
    /// Values recorded before become stale.
    pub fn clear(&self) {
        let mut inner = self.0.borrow_mut();
        inner.nodes.clear();
        inner.param_nodes.clear();
        inner.generation += 1;
    }

    /// The recorded graph in Graphviz DOT: one box per node (op or parameter name, and shape),
    /// one edge per input, from input to result.
    pub fn to_dot(&self) -> String {
        let inner = self.0.borrow();
        let mut out =
            String::from("digraph taper {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
        for (id, node) in inner.nodes.iter().enumerate() {
            let (label, style) = match &node.kind {
                NodeKind::Param(p) => (p.name().to_string(), ", style=filled, fillcolor=\"#dde8ff\""),
                NodeKind::Op(op) => (op.name().to_string(), ""),
            };
            let _ = writeln!(
                out,
                "  n{id} [label=\"{}\\n{:?}\"{style}];",
                label.replace('"', "\\\""),
                node.shape.dims()
            );
            for input in node.inputs.iter().flatten() {
                let _ = writeln!(out, "  n{input} -> n{id};");
            }
        }
        out.push_str("}\n");
        out
    }

    /// Records the result of an op. `inputs` are the op's operands in argument order; if none of
    /// them is tracked (or recording is off) the result is a constant and `make_op` never runs, so
    /// nothing is saved for backward.
    pub(crate) fn record(
        op_name: &'static str,
        inputs: &[&Var],
        value: Tensor,
        make_op: impl FnOnce(&[bool]) -> Op,
    ) -> Result<Var> {
        let mut tape: Option<&Tape> = None;
        for v in inputs {
            if let Some(t) = v.track() {
                match tape {
                    None => tape = Some(&t.tape),
                    Some(seen) if Rc::ptr_eq(&seen.0, &t.tape.0) => {}
                    Some(_) => return Err(Error::MixedTapes(op_name)),
                }
            }
        }
        let Some(tape) = tape else {
            return Ok(Var::constant(value));
        };
        let mut inner = tape.0.borrow_mut();
        if inner.no_grad_depth > 0 {
            return Ok(Var::constant(value));
        }
        let generation = inner.generation;
        let mut ids = Vec::with_capacity(inputs.len());
        for v in inputs {
            match v.track() {
                Some(t) if t.generation != generation => return Err(Error::StaleValue(op_name)),
                Some(t) => ids.push(Some(t.id)),
                None => ids.push(None),
            }
        }
        let mut small = [false; 4];
        let long: Vec<bool>;
        let needs: &[bool] = if ids.len() <= small.len() {
            for (n, id) in small.iter_mut().zip(&ids) {
                *n = id.is_some();
            }
            &small[..ids.len()]
        } else {
            long = ids.iter().map(Option::is_some).collect();
            &long
        };
        let op = make_op(needs);
        let id = inner.nodes.len();
        inner.nodes.push(Node { kind: NodeKind::Op(op), inputs: ids, shape: value.shape().clone() });
        drop(inner);
        Ok(Var::tracked(value, Track { tape: tape.clone(), id, generation }))
    }

    /// Backward from `root` (a tracked scalar): consumes the tape and returns the gradients of the
    /// parameters that `root` depends on.
    pub(crate) fn backward(&self, root: usize, generation: u64, seed: Tensor) -> Result<Grads> {
        let mut nodes = {
            let mut inner = self.0.borrow_mut();
            if inner.generation != generation {
                return Err(Error::StaleValue("backward"));
            }
            inner.param_nodes.clear();
            inner.generation += 1;
            std::mem::take(&mut inner.nodes)
        };
        // Nodes recorded after the root cannot reach it.
        nodes.truncate(root + 1);
        let mut grads: Vec<Option<Tensor>> = Vec::new();
        grads.resize_with(nodes.len(), || None);
        grads[root] = Some(seed);
        let mut out = Grads::default();
        while let Some(node) = nodes.pop() {
            let id = nodes.len();
            // A node no path from the root reaches gets no gradient and is skipped; dropping it
            // here releases what it saved.
            let Some(grad) = grads[id].take() else { continue };
            match node.kind {
                NodeKind::Param(param) => out.insert(param.id(), grad),
                NodeKind::Op(op) => {
                    let mut small = [false; 4];
                    let long: Vec<bool>;
                    let needs: &[bool] = if node.inputs.len() <= small.len() {
                        for (n, id) in small.iter_mut().zip(&node.inputs) {
                            *n = id.is_some();
                        }
                        &small[..node.inputs.len()]
                    } else {
                        long = node.inputs.iter().map(Option::is_some).collect();
                        &long
                    };
                    let name = op.name();
                    let input_grads = crate::profile::scope_with(
                        || format!("backward {name} {:?}", node.shape.dims()),
                        || op.backward(&grad, needs),
                    )?;
                    for (input, g) in node.inputs.iter().zip(input_grads) {
                        if let (Some(input), Some(g)) = (input, g) {
                            accumulate(&mut grads[*input], g)?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        None => g,
        Some(prev) => prev.add(&g)?,
    });
    Ok(())
}
