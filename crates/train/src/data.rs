//! In-memory data sets and a loader with batching and seeded shuffling.

use candle_core::{Device, Tensor};
use taper_tensor::SeededRng;

use crate::{Error, Result};

/// Features and labels held as tensors whose first dimension indexes the examples.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `[n, ...]` features.
    pub x: Tensor,
    /// `[n, ...]` labels.
    pub y: Tensor,
}

impl Dataset {
    /// A data set; `x` and `y` must have the same number of examples.
    pub fn new(x: Tensor, y: Tensor) -> Result<Self> {
        let (nx, ny) = (x.dims().first().copied(), y.dims().first().copied());
        if nx.is_none() || nx != ny {
            return Err(Error::InvalidArgument(format!(
                "features {:?} and labels {:?} must share their first (example) dimension",
                x.dims(),
                y.dims()
            )));
        }
        Ok(Self { x, y })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.x.dims()[0]
    }

    /// Whether there is no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Examples `start..start + len`.
    pub fn slice(&self, start: usize, len: usize) -> Result<Self> {
        if start + len > self.len() {
            return Err(Error::InvalidArgument(format!(
                "examples {start}..{} out of range for {} examples",
                start + len,
                self.len()
            )));
        }
        Ok(Self { x: self.x.narrow(0, start, len)?, y: self.y.narrow(0, start, len)? })
    }

    /// The examples at `ids`, in that order.
    pub fn select(&self, ids: &[u32]) -> Result<Self> {
        let n = self.len();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= n) {
            return Err(Error::InvalidArgument(format!("example {bad} out of range for {n} examples")));
        }
        if let (Some(x), Some(y)) = (gather_rows(&self.x, ids)?, gather_rows(&self.y, ids)?) {
            return Ok(Self { x, y });
        }
        let ids = Tensor::from_slice(ids, ids.len(), self.x.device())?;
        Ok(Self { x: self.x.index_select(&ids, 0)?, y: self.y.index_select(&ids, 0)? })
    }

    /// The same data on `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self { x: self.x.to_device(device)?, y: self.y.to_device(device)? })
    }
}

/// Rows `ids` of a contiguous CPU tensor, copied straight from its storage (a batch every step:
/// no index tensor, no generic strided walk); `None` for other tensors.
fn gather_rows(t: &Tensor, ids: &[u32]) -> Result<Option<Tensor>> {
    use candle_core::{CpuStorage, Storage};
    if !t.device().is_cpu() || t.rank() == 0 {
        return Ok(None);
    }
    let row: usize = t.dims()[1..].iter().product();
    let mut dims = t.dims().to_vec();
    dims[0] = ids.len();
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(None);
    };
    fn pick<T: candle_core::WithDType>(v: &[T], row: usize, ids: &[u32], dims: Vec<usize>) -> Result<Tensor> {
        let mut out = Vec::with_capacity(ids.len() * row);
        for &i in ids {
            out.extend_from_slice(&v[i as usize * row..][..row]);
        }
        Ok(Tensor::from_vec(out, dims, &Device::Cpu)?)
    }
    Ok(Some(match cpu {
        CpuStorage::F32(v) => pick(&v[start..end], row, ids, dims)?,
        CpuStorage::F64(v) => pick(&v[start..end], row, ids, dims)?,
        CpuStorage::U32(v) => pick(&v[start..end], row, ids, dims)?,
        CpuStorage::U8(v) => pick(&v[start..end], row, ids, dims)?,
        CpuStorage::I64(v) => pick(&v[start..end], row, ids, dims)?,
        _ => return Ok(None),
    }))
}

/// Batching over a [`Dataset`]: in order, or shuffled with a permutation that depends only on the
/// seed and the epoch, so that a run resumed at (epoch, batch) sees exactly the batches it would
/// have seen.
#[derive(Debug, Clone)]
pub struct Loader {
    /// Examples per batch.
    pub batch_size: usize,
    /// Shuffle every epoch.
    pub shuffle: bool,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl Loader {
    /// A loader; `batch_size` must be positive.
    pub fn new(batch_size: usize, shuffle: bool, drop_last: bool, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument("batch size must be at least 1".into()));
        }
        Ok(Self { batch_size, shuffle, drop_last, seed })
    }

    /// The number of batches an epoch over `n` examples has.
    pub fn batches(&self, n: usize) -> usize {
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order of the examples in epoch `epoch` (from 0).
    pub fn order(&self, n: usize, epoch: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..n as u32).collect();
        if self.shuffle {
            // One generator per epoch, derived from (seed, epoch): no state to carry over.
            let mut rng = SeededRng::new(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            rng.shuffle(&mut ids);
        }
        ids
    }

    /// The example indices of every batch of epoch `epoch`.
    pub fn epoch_batches(&self, n: usize, epoch: usize) -> Vec<Vec<u32>> {
        let order = self.order(n, epoch);
        order.chunks(self.batch_size).take(self.batches(n)).map(<[u32]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn batches_cover_the_data_once_per_epoch() {
        let l = Loader::new(4, true, false, 9).unwrap();
        let b = l.epoch_batches(10, 0);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<u32> = b.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_ne!(l.order(10, 0), l.order(10, 1), "a new order each epoch");
        assert_eq!(
            l.order(10, 1),
            Loader::new(4, true, false, 9).unwrap().order(10, 1),
            "fixed by seed and epoch"
        );
        assert_eq!(Loader::new(4, true, true, 9).unwrap().epoch_batches(10, 0).len(), 2);
        assert_eq!(Loader::new(4, false, false, 9).unwrap().order(5, 3), [0, 1, 2, 3, 4]);
        assert!(Loader::new(0, false, false, 0).is_err());
    }

    #[test]
    fn dataset_checks_and_selects() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((6, 2)).unwrap();
        let y = Tensor::arange(0u32, 6, &Device::Cpu).unwrap();
        let d = Dataset::new(x.clone(), y).unwrap();
        assert!(Dataset::new(x, Tensor::zeros(5, DType::U32, &Device::Cpu).unwrap()).is_err());
        let s = d.select(&[4, 1]).unwrap();
        assert_eq!(s.y.to_vec1::<u32>().unwrap(), [4, 1]);
        assert_eq!(s.x.to_vec2::<f32>().unwrap(), [[8.0, 9.0], [2.0, 3.0]]);
        assert!(d.slice(5, 2).is_err());
    }
}
