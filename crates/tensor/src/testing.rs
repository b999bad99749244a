//! Running the same test on every device this build can reach, as candle's `test_device!`.

use candle_core::Device;

/// The devices tests run on: the CPU, and the first CUDA device when this build has the `cuda`
/// feature and a GPU is present (a CUDA build without a GPU says so on stderr).
pub fn test_devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut devices = vec![Device::Cpu];
    #[cfg(feature = "cuda")]
    match Device::new_cuda(0) {
        Ok(d) => devices.push(d),
        Err(e) => eprintln!("CUDA build without a usable GPU: CUDA tests skipped ({e})"),
    }
    devices
}

/// Turns `fn name(device: &Device) -> Result<(), E>` (`E: Debug`) into a module `name` with one
/// test per device: `name::cpu`, and `name::cuda` in builds with the `cuda` feature (which prints
/// that it was skipped when no GPU is present). An `Err` fails the test.
///
/// ```ignore
/// fn adds(device: &Device) -> anyhow::Result<()> { /* ... */ Ok(()) }
/// taper_tensor::test_device!(adds);
/// ```
#[macro_export]
macro_rules! test_device {
    ($name:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                if let Err(e) = super::$name(&$crate::Device::Cpu) {
                    panic!("{e:?}");
                }
            }

            #[cfg(feature = "cuda")]
            #[test]
            fn cuda() {
                match $crate::Device::new_cuda(0) {
                    Ok(device) => {
                        if let Err(e) = super::$name(&device) {
                            panic!("{e:?}");
                        }
                    }
                    Err(e) => eprintln!("skipped: no CUDA device ({e})"),
                }
            }
        }
    };
}
