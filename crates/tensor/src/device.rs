use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::{Error, Result};

/// Whether this build has CUDA support (the cargo feature `cuda`).
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// A device as a user names it: `cpu`, `cuda` (GPU 0), `cuda:N`, or `auto` (CUDA when compiled in
/// and present, else CPU). Every example takes it as `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The host CPU.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
    /// CUDA GPU 0 when compiled in and present, otherwise the CPU.
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "auto" => Ok(Self::Auto),
            _ => match t.strip_prefix("cuda:") {
                Some(n) => {
                    n.parse::<usize>().map(Self::Cuda).map_err(|_| Error::UnknownDevice(s.to_string()))
                }
                None => Err(Error::UnknownDevice(s.to_string())),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Auto => write!(f, "auto"),
        }
    }
}

impl DeviceSpec {
    /// Parses a device string; see [`DeviceSpec`].
    pub fn parse(s: &str) -> Result<Self> {
        s.parse()
    }

    /// Opens the device. CUDA in a build without the `cuda` feature, or without a usable GPU, is an
    /// error that names the fix; `auto` never fails for want of a GPU.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => open_cuda(ordinal, &self.to_string()),
            Self::Auto => {
                if cuda_compiled() {
                    Ok(open_cuda(0, "auto").unwrap_or(Device::Cpu))
                } else {
                    Ok(Device::Cpu)
                }
            }
        }
    }

    /// Parses and opens a device string in one go.
    pub fn open_str(s: &str) -> Result<Device> {
        Self::parse(s)?.open()
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize, asked: &str) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| Error::CudaUnavailable {
        device: asked.to_string(),
        reason: e.to_string().lines().next().unwrap_or("unknown error").to_string(),
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize, asked: &str) -> Result<Device> {
    Err(Error::CudaNotCompiled(asked.to_string()))
}

/// A short human name for a device: `cpu` or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_strings() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse("CUDA").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(DeviceSpec::parse("cuda:3").unwrap(), DeviceSpec::Cuda(3));
        assert_eq!(DeviceSpec::parse(" auto ").unwrap(), DeviceSpec::Auto);
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let err = DeviceSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("unknown device"), "{bad}: {err}");
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cpu_and_auto_open() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        // auto falls back to the CPU when no GPU can be used: always without the feature.
        let d = DeviceSpec::Auto.open().unwrap();
        if cuda_compiled() {
            assert!(d.is_cpu() || d.is_cuda());
        } else {
            assert!(d.is_cpu(), "auto without the cuda feature must be the CPU");
        }
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_names_the_fix() {
        let err = DeviceSpec::open_str("cuda:0").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
        assert!(err.contains("--device cpu"), "{err}");
    }
}
