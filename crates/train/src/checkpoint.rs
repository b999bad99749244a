//! Checkpoints in safetensors: the model's parameters (`model.{name}`), the optimizer's whole
//! state (`optim.{param}.{buffer}`), and metadata in the header (format version, optimizer spec,
//! step, epoch, seed, position in the epoch's data order). Writes are atomic; loading checks
//! every name, shape and dtype before changing anything. See `docs/CHECKPOINTS.md`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use taper_autograd::ParamStore;
use taper_optim::schedule::{Scheduler, SchedulerState};
use taper_optim::{AverageState, AveragedModel};
use taper_optim::{OptimSpec, OptimState, Optimizer};

use crate::trainer::Record;
use crate::{Error, Result};

/// The `format` tag in the header.
pub const FORMAT: &str = "taper-checkpoint";
/// The `format_version` this code writes and reads.
pub const FORMAT_VERSION: &str = "2";
/// Versions this code reads: 1 (before the checksum) and 2.
const READS: &[&str] = &["1", "2"];
/// The header field holding the checksum (version 2).
const CHECKSUM: &str = "checksum";

/// CRC-32 over everything a checkpoint says: every header field but the checksum (sorted by key),
/// then every tensor (sorted by name) with its dtype, shape and bytes. Any single flipped bit of
/// a saved file changes it (or breaks the file's structure).
fn checksum<V: safetensors::View>(meta: &HashMap<String, String>, tensors: &mut [(String, V)]) -> String {
    let mut h = crc32fast::Hasher::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| k.as_str() != CHECKSUM).collect();
    keys.sort();
    for k in keys {
        for part in [k.as_bytes(), &[0], meta[k].as_bytes(), &[0]] {
            h.update(part);
        }
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in tensors.iter() {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(format!("{:?}", t.dtype()).as_bytes());
        for d in t.shape() {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(&t.data());
    }
    format!("{:08x}", h.finalize())
}

/// Where a run is: what the header records besides the tensors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// Optimizer steps taken.
    pub step: u64,
    /// Completed epochs.
    pub epoch: u64,
    /// Batches of the current epoch already consumed (0 at an epoch boundary).
    pub batch_in_epoch: u64,
    /// The run's seed (initialization and data order).
    pub seed: u64,
    /// Free-form extra fields (example name, model, ...).
    pub extra: BTreeMap<String, String>,
    /// The curve so far, so that a resumed run's curve is the uninterrupted run's.
    pub records: Vec<Record>,
    /// Sum and count of the batch losses since the last curve point.
    pub window: (f64, u64),
    /// Sum and count of the batch losses of the current epoch so far.
    pub epoch_loss: (f64, u64),
    /// Steps skipped for a non-finite gradient so far.
    pub skipped: u64,
    /// The learning-rate scheduler's canonical spec and state, if the run has one.
    pub scheduler: Option<(String, SchedulerState)>,
    /// The averaged parameters (SWA or EMA), if the run keeps them.
    pub average: Option<AverageState>,
}

/// `a:b` with each f64 in its shortest exact form (NaN and infinities included, which JSON lacks).
fn pair(a: f64, b: f64) -> String {
    format!("{a}:{b}")
}

fn parse_pair(s: &str) -> Option<(f64, f64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn ck_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |msg| Error::Checkpoint { path: path.to_path_buf(), msg }
}

/// Writes a checkpoint atomically: to a temporary file beside `path`, flushed to disk, then
/// renamed over `path` (an interrupted save leaves the previous checkpoint intact).
pub fn save(
    path: impl AsRef<Path>,
    params: &ParamStore,
    opt: &dyn Optimizer,
    progress: &Progress,
) -> Result<()> {
    let path = path.as_ref();
    let e = ck_err(path);
    let state = opt.export_state()?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for p in params.params() {
        tensors.push((format!("model.{}", p.name()), p.value().to_device(&Device::Cpu)?.contiguous()?));
    }
    for (k, t) in &state.tensors {
        tensors.push((format!("optim.{k}"), t.to_device(&Device::Cpu)?.contiguous()?));
    }
    if let Some(avg) = &progress.average {
        for (k, t) in &avg.tensors {
            tensors.push((format!("avg.{k}"), t.to_device(&Device::Cpu)?.contiguous()?));
        }
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("optimizer".to_string(), opt.spec().to_string());
    meta.insert(
        "optimizer_groups".to_string(),
        serde_json::to_string(&state.groups).map_err(|x| e(x.to_string()))?,
    );
    meta.insert(
        "optim_scalars".to_string(),
        serde_json::to_string(&state.scalars).map_err(|x| e(x.to_string()))?,
    );
    meta.insert("step".to_string(), progress.step.to_string());
    meta.insert("epoch".to_string(), progress.epoch.to_string());
    meta.insert("batch_in_epoch".to_string(), progress.batch_in_epoch.to_string());
    meta.insert("seed".to_string(), progress.seed.to_string());
    let records: Vec<String> = progress.records.iter().map(|r| pair(r.epoch, r.value)).collect();
    meta.insert("records".to_string(), records.join(" "));
    meta.insert("window".to_string(), pair(progress.window.0, progress.window.1 as f64));
    meta.insert("epoch_loss".to_string(), pair(progress.epoch_loss.0, progress.epoch_loss.1 as f64));
    meta.insert("skipped".to_string(), progress.skipped.to_string());
    if let Some(avg) = &progress.average {
        meta.insert("average".to_string(), avg.spec.clone());
        meta.insert("average_n".to_string(), avg.n_averaged.to_string());
    }
    if let Some((spec, state)) = &progress.scheduler {
        meta.insert("scheduler".to_string(), spec.clone());
        // `key=value` pairs, each f64 in its shortest exact form (infinities included).
        let pairs: Vec<String> = state.iter().map(|(k, v)| format!("{k}={v}")).collect();
        meta.insert("scheduler_state".to_string(), pairs.join(" "));
    }
    for (k, v) in &progress.extra {
        meta.insert(format!("extra.{k}"), v.clone());
    }
    let sum = checksum(&meta, &mut tensors.iter().map(|(k, t)| (k.clone(), t)).collect::<Vec<_>>());
    meta.insert(CHECKSUM.to_string(), sum);
    let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .map_err(|x| e(format!("cannot serialize: {x}")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(crate::error::io_err(&dir))?;
    let name =
        path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io { path: path.to_path_buf(), error: source }
    })
}

/// A `sum:count` header field (absent: nothing summed).
fn sum_count(meta: &HashMap<String, String>, key: &str) -> std::result::Result<(f64, u64), String> {
    let Some(text) = meta.get(key) else { return Ok((0.0, 0)) };
    match parse_pair(text) {
        Some((sum, count)) if count >= 0.0 && count.fract() == 0.0 => Ok((sum, count as u64)),
        _ => Err(format!("header field `{key}` is not sum:count")),
    }
}

/// A checkpoint read from disk, not yet applied.
#[derive(Debug)]
pub struct Checkpoint {
    /// `model.*` tensors, by parameter name.
    pub model: BTreeMap<String, Tensor>,
    /// The optimizer's state.
    pub optim: OptimState,
    /// The run's position.
    pub progress: Progress,
}

/// Reads and parses a checkpoint; a truncated, corrupt or foreign file is an error that says so.
pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(crate::error::io_err(path))?;
    parse(&bytes, path)
}

/// Parses a checkpoint's bytes (`origin` names it in errors).
pub fn parse(bytes: &[u8], origin: &Path) -> Result<Checkpoint> {
    let path = origin;
    let e = ck_err(path);
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|x| e(format!("not a readable safetensors file (truncated or corrupt?): {x}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|x| e(x.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let field = |k: &str| {
        meta.get(k).cloned().ok_or_else(|| e(format!("header lacks `{k}`: not a Taper checkpoint")))
    };
    if field("format")? != FORMAT {
        return Err(e(format!("header format is `{}`, not `{FORMAT}`", field("format")?)));
    }
    let version = field("format_version")?;
    if !READS.contains(&version.as_str()) {
        return Err(e(format!("format version {version}; this build reads versions {}", READS.join(", "))));
    }
    if version != "1" {
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            st.tensors().into_iter().collect();
        let want = checksum(&meta, &mut views);
        if meta.get(CHECKSUM) != Some(&want) {
            return Err(e(format!(
                "checksum mismatch (header says {}, the contents give {want}): the file is corrupt",
                meta.get(CHECKSUM).map_or("nothing", String::as_str)
            )));
        }
    }
    let num = |k: &str| -> Result<u64> {
        field(k)?.parse().map_err(|_| e(format!("header field `{k}` is not a number")))
    };
    let progress = Progress {
        step: num("step")?,
        epoch: num("epoch")?,
        batch_in_epoch: num("batch_in_epoch")?,
        seed: num("seed")?,
        extra: meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("extra.").map(|k| (k.to_string(), v.clone())))
            .collect(),
        // Checkpoints written before the curve was carried have none of these: start empty.
        records: match meta.get("records") {
            Some(text) => text
                .split_whitespace()
                .map(|r| parse_pair(r).map(|(epoch, value)| Record { epoch, value }))
                .collect::<Option<_>>()
                .ok_or_else(|| e("header field `records` is not a list of epoch:value pairs".into()))?,
            None => Vec::new(),
        },
        window: sum_count(&meta, "window").map_err(&e)?,
        epoch_loss: sum_count(&meta, "epoch_loss").map_err(&e)?,
        skipped: match meta.get("skipped") {
            Some(v) => v.parse().map_err(|_| e("header field `skipped` is not a number".into()))?,
            None => 0,
        },
        scheduler: match (meta.get("scheduler"), meta.get("scheduler_state")) {
            (Some(spec), Some(text)) => {
                let state = text
                    .split_whitespace()
                    .map(|kv| {
                        kv.split_once('=').and_then(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?)))
                    })
                    .collect::<Option<SchedulerState>>()
                    .ok_or_else(|| e("header field `scheduler_state` is not a list of key=value".into()))?;
                Some((spec.clone(), state))
            }
            (None, None) => None,
            _ => {
                return Err(e(
                    "header has a scheduler without its state, or a state without its scheduler".into()
                ))
            }
        },
        average: None,
    };
    let scalars: BTreeMap<String, f64> =
        serde_json::from_str(&field("optim_scalars")?).map_err(|x| e(format!("bad optim_scalars: {x}")))?;
    let mut model = BTreeMap::new();
    let mut optim_tensors = Vec::new();
    let mut avg_tensors = Vec::new();
    for (name, view) in st.tensors() {
        let t = view.load(&Device::Cpu).map_err(|x| e(format!("tensor `{name}`: {x}")))?;
        if let Some(n) = name.strip_prefix("model.") {
            model.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("optim.") {
            optim_tensors.push((n.to_string(), t));
        } else if let Some(n) = name.strip_prefix("avg.") {
            avg_tensors.push((n.to_string(), t));
        } else {
            return Err(e(format!("unexpected tensor `{name}` (neither model.*, optim.* nor avg.*)")));
        }
    }
    let mut progress = progress;
    progress.average = match (meta.get("average"), meta.get("average_n")) {
        (Some(spec), Some(n)) => Some(AverageState {
            spec: spec.clone(),
            n_averaged: n.parse().map_err(|_| e("header field `average_n` is not a number".into()))?,
            tensors: avg_tensors,
        }),
        (None, None) if avg_tensors.is_empty() => None,
        _ => return Err(e("averaged tensors without their `average` header, or the other way round".into())),
    };
    // Every group's spec; checkpoints written before groups were recorded hold the first only.
    let groups: Vec<String> = match meta.get("optimizer_groups") {
        Some(text) => serde_json::from_str(text).map_err(|x| e(format!("bad optimizer_groups: {x}")))?,
        None => vec![field("optimizer")?],
    };
    let optim = OptimState { groups, scalars, tensors: optim_tensors };
    Ok(Checkpoint { model, optim, progress })
}

/// Loads a checkpoint into `params` and `opt`. Every parameter must be there with its shape and
/// dtype, nothing else may be, and the optimizer must be the one that saved it; otherwise the
/// error says what differs and nothing is changed.
pub fn load(path: impl AsRef<Path>, params: &ParamStore, opt: &mut dyn Optimizer) -> Result<Progress> {
    let path = path.as_ref();
    apply(read(path)?, path, params, opt)
}

/// Applies a checkpoint read with [`read`] or [`parse`] to `params` and `opt`, all or nothing, as
/// [`load`] does (`origin` names it in errors).
pub fn apply(
    ck: Checkpoint,
    origin: &Path,
    params: &ParamStore,
    opt: &mut dyn Optimizer,
) -> Result<Progress> {
    let e = ck_err(origin);
    let mut differences = Vec::new();
    for p in params.params() {
        match ck.model.get(p.name()) {
            None => differences.push(format!("parameter `{}` is missing", p.name())),
            Some(t) if t.dims() != p.dims().as_slice() || t.dtype() != p.dtype() => {
                differences.push(format!(
                    "`{}` is {:?} {:?} in the checkpoint, {:?} {:?} in the model",
                    p.name(),
                    t.dtype(),
                    t.dims(),
                    p.dtype(),
                    p.dims()
                ))
            }
            Some(_) => {}
        }
    }
    for name in ck.model.keys() {
        if params.get(name).is_none() {
            differences.push(format!("the checkpoint has `{name}`, the model does not"));
        }
    }
    if !differences.is_empty() {
        return Err(e(differences.join("; ")));
    }
    for (gi, text) in ck.optim.groups.iter().enumerate() {
        let saved = OptimSpec::parse(text).map_err(|x| e(format!("group {gi}: {x}")))?;
        // Each group against this optimizer's group (a mixed optimizer's groups differ).
        let ours = opt.group_spec(gi).map_or_else(|| opt.name(), |s| s.name);
        if saved.name != ours {
            return Err(e(
                format!("saved with optimizer `{}` ({text}), this run uses `{ours}`", saved.name,),
            ));
        }
    }
    // Everything that can fail comes first: the values on the parameters' devices, then the
    // optimizer's import (all or nothing); only then are the parameters set, which cannot fail
    // (names, shapes and dtypes were checked above).
    let values = params
        .params()
        .iter()
        .map(|p| {
            let t =
                ck.model.get(p.name()).ok_or_else(|| e(format!("parameter `{}` is missing", p.name())))?;
            Ok((p, t.to_device(&p.device())?))
        })
        .collect::<Result<Vec<_>>>()?;
    opt.import_state(&ck.optim).map_err(|x| e(x.to_string()))?;
    for (p, t) in values {
        p.set(t)?;
    }
    Ok(ck.progress)
}

/// Saves a hand-written loop's whole run in one call: the model, the optimizer, and the scheduler
/// and the weight average when the run has them, with `progress` (the step, the seed, anything in
/// `extra`). [`load_training`] restores it. Atomic, as [`save`].
pub fn save_training(
    path: impl AsRef<Path>,
    params: &ParamStore,
    opt: &dyn Optimizer,
    scheduler: Option<&Scheduler>,
    average: Option<&AveragedModel>,
    progress: &Progress,
) -> Result<()> {
    let mut progress = progress.clone();
    progress.scheduler = scheduler.map(|s| (s.spec(), s.state()));
    progress.average = average.map(AveragedModel::export_state).transpose()?;
    save(path, params, opt, &progress)
}

/// Restores what [`save_training`] saved into `params`, `opt`, and the scheduler and average the
/// resumed run has built (attach the scheduler before restoring, as PyTorch builds a scheduler
/// before loading state into it: attaching sets rates, which the restore then puts back). All or
/// nothing: a checkpoint of another model, optimizer, scheduler spec or averaging, or a run
/// without the scheduler or average the checkpoint has, is an error that changes nothing.
pub fn load_training(
    path: impl AsRef<Path>,
    params: &ParamStore,
    opt: &mut dyn Optimizer,
    scheduler: Option<&mut Scheduler>,
    average: Option<&mut AveragedModel>,
) -> Result<Progress> {
    let path = path.as_ref();
    let ck = read(path)?;
    let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    let started = ck.progress.step > 0;
    let sched_state = match (&ck.progress.scheduler, &scheduler) {
        (Some((spec, state)), Some(s)) if *spec == s.spec() => Some(state.clone()),
        (Some((spec, _)), Some(s)) => {
            return Err(bad(format!("saved with scheduler `{spec}`, this run uses `{}`", s.spec())))
        }
        (Some((spec, _)), None) => {
            return Err(bad(format!("saved with scheduler `{spec}`: resume with the same scheduler")))
        }
        (None, Some(s)) if started => {
            return Err(bad(format!("saved without a scheduler, this run uses `{}`", s.spec())))
        }
        (None, _) => None,
    };
    let avg_state = match (&ck.progress.average, &average) {
        (Some(a), Some(m)) if a.spec == m.averaging().spec() => Some(a.clone()),
        (Some(a), Some(m)) => {
            return Err(bad(format!(
                "saved with averaging `{}`, this run averages `{}`",
                a.spec,
                m.averaging().spec()
            )))
        }
        (Some(a), None) => {
            return Err(bad(format!("saved with averaging `{}`: resume with the same", a.spec)))
        }
        (None, Some(m)) if started => {
            return Err(bad(format!("saved without averaging, this run averages `{}`", m.averaging().spec())))
        }
        (None, _) => None,
    };
    // Each part is all or nothing; the parts that come first are put back if a later one fails.
    let mut scheduler = scheduler;
    let sched_before = scheduler.as_ref().map(|s| s.state());
    if let (Some(s), Some(state)) = (scheduler.as_deref_mut(), &sched_state) {
        s.load_state(state).map_err(|x| bad(x.to_string()))?;
    }
    let restore_scheduler = |scheduler: &mut Option<&mut Scheduler>| {
        if let (Some(s), Some(state)) = (scheduler.as_deref_mut(), &sched_before) {
            // The state was taken from this scheduler a moment ago: it loads.
            let _ = s.load_state(state);
        }
    };
    let mut average = average;
    let avg_before = match average.as_deref() {
        Some(m) => Some(m.export_state()?),
        None => None,
    };
    if let (Some(m), Some(state)) = (average.as_deref_mut(), &avg_state) {
        if let Err(x) = m.import_state(state) {
            restore_scheduler(&mut scheduler);
            return Err(bad(x.to_string()));
        }
    }
    match apply(ck, path, params, opt) {
        Ok(progress) => Ok(progress),
        Err(x) => {
            restore_scheduler(&mut scheduler);
            if let (Some(m), Some(state)) = (average, &avg_before) {
                let _ = m.import_state(state);
            }
            Err(x)
        }
    }
}
