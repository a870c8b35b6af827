//! Device-to-host reads: the one place where the crate reads tensors back, and a counter.
//!
//! A read (`into_data`, `to_vec`, `into_scalar`, …) waits for everything queued on the
//! device — the model's forward pass included — and flushes Burn's fusion stream, so on a
//! GPU the host stops running ahead of the device. The crate reads only where a value is
//! needed on the host: timesteps given as a tensor (once, at the edge), a loss or
//! gradient norm that is logged, images written to a file. Every such read goes through
//! this module, and [`device_reads`] counts them; CI checks (`.ci/check-host-reads`) that
//! no other file of `src/` reads tensor data.

use std::cell::Cell;

use burn::tensor::kind::Basic;
use burn::tensor::{Element, Tensor};

use crate::error::{DiffusionError, Result};

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// The number of device-to-host reads burn-diffusion has made on the calling thread
/// since it started (a diagnostic: the difference between two calls is what the code in
/// between read).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::host::device_reads;
/// use burn_diffusion::prelude::*;
/// use burn_diffusion::schedule::Timesteps;
///
/// let device = Device::flex();
/// let process = VpProcess::new(ScheduleConfig::new().init()?);
/// let x0 = Tensor::<2>::zeros([2, 3], &device);
/// let before = device_reads();
/// let on_device = Tensor::<1, Int>::from_ints([10, 900], &device);
/// process.q_marginal(x0.clone(), &on_device)?; // reads the timesteps once
/// process.q_marginal(x0, &Timesteps::from_values(&[10, 900], 1000)?)?; // reads nothing
/// assert_eq!(device_reads() - before, 1);
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn device_reads() -> u64 {
    READS.with(Cell::get)
}

/// Reads `tensor` into a host `Vec<E>` (converting its element type), counting the read.
///
/// # Errors
/// [`DiffusionError::TensorRead`] naming `what` if the backend cannot read the tensor.
pub(crate) fn read_vec<E: Element, const D: usize, K: Basic>(
    tensor: Tensor<D, K>,
    what: &'static str,
) -> Result<Vec<E>> {
    READS.with(|reads| reads.set(reads.get() + 1));
    tensor
        .try_into_vec_as::<E>()
        .map_err(|e| DiffusionError::TensorRead {
            what,
            reason: format!("{e:?}"),
        })
}

/// Reads a one-element tensor as an `f64`, counting the read.
///
/// # Errors
/// As [`read_vec`].
pub(crate) fn read_scalar<const D: usize>(tensor: Tensor<D>, what: &'static str) -> Result<f64> {
    let values = read_vec::<f32, D, _>(tensor, what)?;
    Ok(values.first().map_or(f64::NAN, |v| f64::from(*v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Int};

    #[test]
    fn reads_are_counted_per_thread() {
        let device = Device::flex();
        let before = device_reads();
        let v: Vec<i64> = read_vec(Tensor::<1, Int>::from_ints([3, 1], &device), "t").unwrap();
        let s = read_scalar(Tensor::<1>::from_floats([2.5], &device), "loss").unwrap();
        assert_eq!((v, s), (vec![3, 1], 2.5));
        assert_eq!(device_reads() - before, 2);
        let other = std::thread::spawn(device_reads).join().unwrap();
        assert_eq!(other, 0, "another thread's reads are its own");
    }
}
