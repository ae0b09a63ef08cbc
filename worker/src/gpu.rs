//! What GPUs this host has, read through the CUDA driver API (cudarc).
//!
//! [`gpus`] never panics on a host without CUDA: in the CPU build cudarc loads
//! `libcuda` at run time (`fallback-dynamic-loading`), and a driver call
//! without the library panics, so `driver_present` asks first. In the `cuda`
//! build mistralrs links CUDA at build time (cudarc's `dynamic-linking`), the
//! binary does not start without the library, and cudarc has no
//! `is_culib_present` to call.

use cudarc::driver::{CudaContext, DriverError, result};

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// CUDA ordinal.
    pub index: usize,
    pub name: String,
    pub total_bytes: u64,
    /// Free memory when read, as the driver sees it (other processes included).
    pub free_bytes: u64,
}

#[cfg(not(feature = "cuda"))]
#[allow(unsafe_code)]
fn driver_present() -> bool {
    // SAFETY: only tries to open the library with libloading; no driver call.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[cfg(feature = "cuda")]
fn driver_present() -> bool {
    true
}

/// The host's GPUs, or `None` when there is no CUDA driver, no device, or the
/// driver fails (the reason is logged).
pub fn gpus() -> Option<Vec<GpuInfo>> {
    if !driver_present() {
        tracing::debug!("no CUDA driver library found");
        return None;
    }
    match read_gpus() {
        Ok(list) if list.is_empty() => None,
        Ok(list) => Some(list),
        Err(error) => {
            tracing::warn!(%error, "reading the GPUs through the CUDA driver failed");
            None
        }
    }
}

fn read_gpus() -> Result<Vec<GpuInfo>, DriverError> {
    result::init()?;
    let count = usize::try_from(CudaContext::device_count()?).unwrap_or(0);
    (0..count)
        .map(|index| {
            let context = CudaContext::new(index)?;
            let (free, total) = context.mem_get_info()?;
            Ok(GpuInfo {
                index,
                name: context.name()?,
                total_bytes: total as u64,
                free_bytes: free as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs everywhere: without CUDA (this machine) it must say `None`, not
    /// panic; with CUDA every device must report sane memory.
    #[test]
    fn gpus_never_panics() {
        match gpus() {
            None => {}
            Some(list) => {
                for gpu in list {
                    assert!(gpu.total_bytes > 0 && gpu.free_bytes <= gpu.total_bytes);
                }
            }
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn no_driver_means_none() {
        if !driver_present() {
            assert_eq!(gpus(), None);
        }
    }
}
