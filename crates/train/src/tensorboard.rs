//! TensorBoard event files: a writer of scalars and of hyperparameters (the hparams plugin), and a
//! reader that checks every record, so that a run's curves open in `tensorboard --logdir DIR`.
//!
//! The format is TensorFlow's: a file `events.out.tfevents.{secs}.{host}.{pid}.{n}` of TFRecords,
//! each `u64 length · u32 masked CRC-32C of the length · data · u32 masked CRC-32C of the data`
//! (little-endian; a mask is `((crc >> 15) | (crc << 17)) + 0xa282ead8`), whose data is a protobuf
//! `tensorflow.Event`. The first event names the format (`brain.Event:2`); each scalar is an event
//! with its step and one `Summary.Value` whose `simple_value` is the number as an `f32`, as
//! PyTorch's `SummaryWriter.add_scalar` writes it. Hyperparameters are the hparams plugin's
//! `session_start_info` and `session_end_info` summaries (PyTorch's `add_hparams`), from which
//! TensorBoard builds its table of runs.
//!
//! ```
//! use taper_train::tensorboard::{read_scalars, HParam, SummaryWriter};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("tb-doc-{}", std::process::id()));
//! let mut w = SummaryWriter::new(&dir)?;
//! w.add_hparams(&[("lr".into(), HParam::Number(0.01)), ("optimizer".into(), HParam::Text("adamw".into()))])?;
//! for step in 0..3 {
//!     w.add_scalar("loss/train", 1.0 / (step + 1) as f64, step)?;
//! }
//! w.close()?;
//! let points = read_scalars(&dir)?;
//! assert_eq!(points.len(), 3);
//! assert_eq!((points[2].tag.as_str(), points[2].step, points[2].value), ("loss/train", 2, 1.0 / 3.0f32));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use candle_core::{DType, Tensor};
use prost::Message;
use taper_autograd::Param;
use taper_optim::Optimizer;

use crate::{Error, Result};

/// `tensorflow.Event` (the fields Taper writes and reads).
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// The format's name, in the first event of a file.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The summary.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// Its values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The tag (the curve's name).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// The plugin that reads it (hparams).
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    /// The plugin's name and data.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    /// `hparams`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// The plugin's own protobuf.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct HParamsPluginData {
    /// 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// A session's hyperparameters.
    #[prost(message, optional, tag = "3")]
    pub session_start_info: Option<SessionStartInfo>,
    /// A session's end.
    #[prost(message, optional, tag = "4")]
    pub session_end_info: Option<SessionEndInfo>,
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionStartInfo {
    /// The hyperparameters.
    #[prost(map = "string, message", tag = "1")]
    pub hparams: HashMap<String, ProtoValue>,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionEndInfo {
    /// 1: success.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value` (a number, a string or a boolean).
#[derive(Clone, PartialEq, Message)]
pub struct ProtoValue {
    /// A number.
    #[prost(double, optional, tag = "2")]
    pub number_value: Option<f64>,
    /// A string.
    #[prost(string, optional, tag = "3")]
    pub string_value: Option<String>,
    /// A boolean.
    #[prost(bool, optional, tag = "4")]
    pub bool_value: Option<bool>,
}

/// A hyperparameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    /// A number (a learning rate).
    Number(f64),
    /// A word (an optimizer's name, a spec).
    Text(String),
    /// A flag.
    Bool(bool),
}

impl HParam {
    /// A spec option's value as written: a number, a boolean, or else text.
    pub fn parse(text: &str) -> Self {
        match text {
            "true" => HParam::Bool(true),
            "false" => HParam::Bool(false),
            _ => text.parse::<f64>().map_or_else(|_| HParam::Text(text.to_string()), HParam::Number),
        }
    }

    fn proto(&self) -> ProtoValue {
        let mut v = ProtoValue::default();
        match self {
            HParam::Number(x) => v.number_value = Some(*x),
            HParam::Text(s) => v.string_value = Some(s.clone()),
            HParam::Bool(b) => v.bool_value = Some(*b),
        }
        v
    }
}

/// The mask TFRecord puts on a CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Files made by this process, for unique names.
static FILES: AtomicU64 = AtomicU64::new(0);

/// Writes one run's event file (one directory is one run in TensorBoard): `add_scalar` and
/// `add_hparams` as PyTorch's `SummaryWriter`. Records are buffered and written out by
/// [`SummaryWriter::flush`], [`SummaryWriter::close`] or drop; a run that is killed loses at most
/// the records since the last flush, and TensorBoard reads every complete record before it.
#[derive(Debug)]
pub struct SummaryWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl SummaryWriter {
    /// A new event file in `logdir` (created with its parents), beginning with the format's
    /// event. An unwritable directory is an error naming it.
    pub fn new(logdir: impl AsRef<Path>) -> Result<Self> {
        let dir = logdir.as_ref();
        let io = |what: &str, e: std::io::Error| Error::EventFile {
            path: dir.to_path_buf(),
            msg: format!("{what}: {e}"),
        };
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create this TensorBoard log directory", e))?;
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty() && !h.contains(['/', '\\']));
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}",
            now() as u64,
            host.as_deref().unwrap_or("localhost"),
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = File::create(&path)
            .map_err(|e| io("cannot write an event file in this TensorBoard log directory", e))?;
        let mut w = SummaryWriter { file: BufWriter::new(file), path };
        w.write_event(&Event {
            wall_time: now(),
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        w.flush()?;
        Ok(w)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, e: &Event) -> Result<()> {
        let data = e.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&masked_crc(&len).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc(&data).to_le_bytes());
        self.file.write_all(&record).map_err(crate::error::io_err(&self.path))
    }

    /// Records `value` (stored as an `f32`, as TensorBoard keeps scalars) under `tag` at `step`.
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        self.add_scalars(step, &[(tag, value)])
    }

    /// Records several scalars at one step, in one event.
    pub fn add_scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let value = values
            .iter()
            .map(|(tag, v)| SummaryValue {
                tag: tag.to_string(),
                simple_value: Some(*v as f32),
                metadata: None,
            })
            .collect();
        self.write_event(&Event {
            wall_time: now(),
            step: step as i64,
            file_version: None,
            summary: Some(Summary { value }),
        })
    }

    fn hparams_event(&mut self, tag: &str, data: HParamsPluginData) -> Result<()> {
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData { plugin_name: "hparams".into(), content: data.encode_to_vec() }),
        };
        self.write_event(&Event {
            wall_time: now(),
            step: 0,
            file_version: None,
            summary: Some(Summary {
                value: vec![SummaryValue { tag: tag.into(), simple_value: None, metadata: Some(metadata) }],
            }),
        })
    }

    /// Records this run's hyperparameters (the hparams plugin's session start and end), so that
    /// TensorBoard's HPARAMS tab lists the run with them beside its scalars' last values.
    pub fn add_hparams(&mut self, hparams: &[(String, HParam)]) -> Result<()> {
        let start = SessionStartInfo {
            hparams: hparams.iter().map(|(k, v)| (k.clone(), v.proto())).collect(),
            start_time_secs: now(),
        };
        self.hparams_event(
            "_hparams_/session_start_info",
            HParamsPluginData { version: 0, session_start_info: Some(start), session_end_info: None },
        )?;
        let end = SessionEndInfo { status: 1, end_time_secs: now() };
        self.hparams_event(
            "_hparams_/session_end_info",
            HParamsPluginData { version: 0, session_start_info: None, session_end_info: Some(end) },
        )
    }

    /// Writes the buffered records out.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(crate::error::io_err(&self.path))
    }

    /// Flushes and closes the file (reporting an error that drop would swallow).
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }
}

impl Drop for SummaryWriter {
    fn drop(&mut self) {
        // A failure here has nowhere to go; `close` reports it.
        let _ = self.file.flush();
    }
}

/// What a training loop logs of one optimizer step besides its loss: the gradients' global L2
/// norm (`taper_optim::clip::grad_norm`) and the update-to-parameter ratio
/// `‖θₜ - θₜ₋₁‖/‖θₜ₋₁‖` (both over every parameter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// `‖g‖₂` over every parameter's gradient.
    pub grad_norm: f64,
    /// `‖θₜ - θₜ₋₁‖₂ / ‖θₜ₋₁‖₂`.
    pub update_ratio: f64,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats { grad_norm: f64::NAN, update_ratio: f64::NAN }
    }
}

impl StepStats {
    /// Copies of the parameters' values before a step (optimizers update them in place).
    pub fn snapshot(params: &[Param]) -> Result<Vec<Tensor>> {
        Ok(params.iter().map(|p| p.value().copy()).collect::<candle_core::Result<_>>()?)
    }

    /// Writes a step's `train/loss`, `train/grad_norm`, `train/update_ratio` and each group's
    /// `lr/group_{g}` at `step`, in one event.
    pub fn log(&self, w: &mut SummaryWriter, step: u64, loss: f64, opt: &dyn Optimizer) -> Result<()> {
        let mut scalars = vec![
            ("train/loss".to_string(), loss),
            ("train/grad_norm".to_string(), self.grad_norm),
            ("train/update_ratio".to_string(), self.update_ratio),
        ];
        for g in 0..opt.num_groups() {
            scalars.push((format!("lr/group_{g}"), opt.group_learning_rate(g).unwrap_or(f64::NAN)));
        }
        let refs: Vec<(&str, f64)> = scalars.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        w.add_scalars(step, &refs)
    }

    /// `‖θ - θ₀‖₂ / ‖θ₀‖₂` of `params` against their `before` values.
    pub fn update_ratio(before: &[Tensor], params: &[Param]) -> candle_core::Result<f64> {
        let (mut num, mut den) = (0.0, 0.0);
        for (b, p) in before.iter().zip(params) {
            let sq = |t: &Tensor| -> candle_core::Result<f64> {
                t.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar()
            };
            num += sq(&(p.value() - b)?)?;
            den += sq(b)?;
        }
        Ok(if den > 0.0 { (num / den).sqrt() } else { num.sqrt() })
    }
}

/// The records of a TFRecord file, each checked (length and data CRCs): an error names the file
/// and the offset of the first bad record. A truncated last record (a run killed while writing)
/// is left out, as TensorBoard leaves it.
pub fn read_records(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(crate::error::io_err(path))?;
    let bad = |at: usize, what: &str| Error::EventFile {
        path: path.to_path_buf(),
        msg: format!("{what} at byte {at}"),
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.len() - at < 12 {
            break;
        }
        let len_bytes = &bytes[at..at + 8];
        let crc = u32::from_le_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        if masked_crc(len_bytes) != crc {
            return Err(bad(at, "a record's length fails its CRC-32C"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| bad(at, "a short length"))?);
        let start = at + 12;
        let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
            return Err(bad(at, "a record longer than memory"));
        };
        if end + 4 > bytes.len() {
            break;
        }
        let data = &bytes[start..end];
        let crc = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if masked_crc(data) != crc {
            return Err(bad(at, "a record's data fails its CRC-32C"));
        }
        out.push(data.to_vec());
        at = end + 4;
    }
    Ok(out)
}

/// The events of an event file.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    read_records(path)?
        .iter()
        .map(|r| {
            Event::decode(r.as_slice())
                .map_err(|e| Error::EventFile { path: path.to_path_buf(), msg: format!("not an event: {e}") })
        })
        .collect()
}

/// One scalar read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarPoint {
    /// The run: the event file's directory, relative to the log directory (`""` for itself).
    pub run: String,
    /// The tag.
    pub tag: String,
    /// The step.
    pub step: i64,
    /// The value.
    pub value: f32,
}

/// Every event file under `logdir` (recursively), sorted by path.
pub fn event_files(logdir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![logdir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(crate::error::io_err(&dir))?;
        for entry in entries {
            let path = entry.map_err(crate::error::io_err(&dir))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("tfevents")) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every scalar under `logdir`, file by file in path order, each file's in the order written.
pub fn read_scalars(logdir: &Path) -> Result<Vec<ScalarPoint>> {
    let mut out = Vec::new();
    for file in event_files(logdir)? {
        let run = file
            .parent()
            .and_then(|p| p.strip_prefix(logdir).ok())
            .map_or(String::new(), |p| p.to_string_lossy().into_owned());
        for e in read_events(&file)? {
            for v in e.summary.into_iter().flat_map(|s| s.value) {
                if let Some(value) = v.simple_value {
                    out.push(ScalarPoint { run: run.clone(), tag: v.tag, step: e.step, value });
                }
            }
        }
    }
    Ok(out)
}

/// The hyperparameters a run's event files hold (its latest `session_start_info`).
pub fn read_hparams(rundir: &Path) -> Result<Vec<(String, HParam)>> {
    let mut found = Vec::new();
    let files: Vec<PathBuf> =
        event_files(rundir)?.into_iter().filter(|f| f.parent() == Some(rundir)).collect();
    for file in files {
        for e in read_events(&file)? {
            for v in e.summary.into_iter().flat_map(|s| s.value) {
                let Some(pd) = v.metadata.and_then(|m| m.plugin_data).filter(|p| p.plugin_name == "hparams")
                else {
                    continue;
                };
                let data = HParamsPluginData::decode(pd.content.as_slice()).map_err(|e| {
                    Error::EventFile { path: file.clone(), msg: format!("bad hparams data: {e}") }
                })?;
                if let Some(start) = data.session_start_info {
                    found = start
                        .hparams
                        .into_iter()
                        .map(|(k, v)| {
                            let h = match (v.number_value, v.string_value, v.bool_value) {
                                (Some(x), _, _) => HParam::Number(x),
                                (_, Some(s), _) => HParam::Text(s),
                                (_, _, Some(b)) => HParam::Bool(b),
                                _ => HParam::Text(String::new()),
                            };
                            (k, h)
                        })
                        .collect();
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("taper-tb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_crc_is_castagnolis_masked_as_tfrecord_masks_it() {
        // CRC-32C of "123456789" is 0xe3069283 (the check value of the iSCSI polynomial).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn scalars_and_hparams_read_back_and_a_damaged_record_is_refused() {
        let dir = tmp("roundtrip");
        let mut w = SummaryWriter::new(dir.join("run")).unwrap();
        w.add_hparams(&[("lr".into(), HParam::Number(3e-4)), ("nesterov".into(), HParam::Bool(true))])
            .unwrap();
        for step in 0..5u64 {
            w.add_scalars(step * 10, &[("loss/train", 2.0 - step as f64 * 0.1), ("lr", 1e-3)]).unwrap();
        }
        let path = w.path().to_path_buf();
        w.close().unwrap();
        let pts = read_scalars(&dir).unwrap();
        assert_eq!(pts.len(), 10);
        assert!(pts.iter().all(|p| p.run == "run"));
        assert_eq!(
            pts[8],
            ScalarPoint { run: "run".into(), tag: "loss/train".into(), step: 40, value: 1.6f32 }
        );
        let hp = read_hparams(&dir.join("run")).unwrap();
        assert_eq!(hp, [("lr".into(), HParam::Number(3e-4)), ("nesterov".into(), HParam::Bool(true))]);
        let events = read_events(&path).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        // A truncated last record is left out; a flipped byte is an error.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(read_events(&path).unwrap().len(), events.len() - 1);
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 10] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(read_events(&path).unwrap_err().to_string().contains("CRC-32C"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_log_directory_is_an_error_naming_it() {
        let dir = tmp("blocked");
        std::fs::write(&dir, b"a file, not a directory").unwrap();
        let e = SummaryWriter::new(dir.join("run")).unwrap_err().to_string();
        assert!(e.contains("TensorBoard log directory") && e.contains("blocked"), "{e}");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn spec_values_become_numbers_flags_or_words() {
        assert_eq!(HParam::parse("1e-3"), HParam::Number(1e-3));
        assert_eq!(HParam::parse("true"), HParam::Bool(true));
        assert_eq!(HParam::parse("bf16"), HParam::Text("bf16".into()));
    }
}
