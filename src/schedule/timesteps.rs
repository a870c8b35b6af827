//! Per-example timesteps and the one helper that gathers a coefficient table at them.
//!
//! Schedules live on the host in `f64`, and so do timesteps that the host chose (a
//! sampler's visits, a training step's draw): [`Timesteps`]. Timesteps given as a tensor
//! `t` (shape `[N]`) are read back once, at the edge. Every coefficient the caller needs is
//! then gathered from its table in `f64`, rounded once to the tensor's float type and
//! uploaded already broadcast to `[N, 1, 1, ...]`, for a tensor of any rank.

use std::borrow::Cow;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{DiffusionError, Result};

/// Timesteps as the math takes them (`t: &impl TimestepInput`): host [`Timesteps`], which
/// cost no device read, or a `Tensor<1, Int>` of shape `[N]`, which is read back from its
/// device once per call (see [`crate::host`]). Either is checked against `0..T`.
///
/// Sealed: implemented for [`Timesteps`] and `Tensor<1, Int>` only.
pub trait TimestepInput: sealed::Sealed {
    /// The timesteps on the host, checked against `0..num_timesteps`.
    ///
    /// # Errors
    /// [`DiffusionError::TimestepOutOfRange`] for a timestep outside `0..num_timesteps`;
    /// [`DiffusionError::TensorRead`] if a tensor cannot be read.
    fn host(&self, num_timesteps: usize) -> Result<Cow<'_, Timesteps>>;

    /// The timesteps as a `[N]` Int tensor on `device`, what a model is called with (an
    /// upload for host timesteps; no read).
    fn tensor(&self, device: &Device) -> Tensor<1, Int>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Timesteps {}
    impl Sealed for burn::tensor::Tensor<1, burn::tensor::Int> {}
}

impl TimestepInput for Timesteps {
    fn host(&self, num_timesteps: usize) -> Result<Cow<'_, Timesteps>> {
        self.check_range(num_timesteps)?;
        Ok(Cow::Borrowed(self))
    }

    fn tensor(&self, device: &Device) -> Tensor<1, Int> {
        self.to_tensor(device)
    }
}

impl TimestepInput for Tensor<1, Int> {
    fn host(&self, num_timesteps: usize) -> Result<Cow<'_, Timesteps>> {
        Timesteps::read(self, num_timesteps).map(Cow::Owned)
    }

    fn tensor(&self, device: &Device) -> Tensor<1, Int> {
        self.clone().to_device(device)
    }
}

/// A batch of 0-based timesteps on the host, one per example.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_diffusion::schedule::Timesteps;
///
/// let device = Device::flex();
/// let t = Tensor::<1, Int>::from_ints([0, 5, 9], &device);
/// let ts = Timesteps::read(&t, 10).unwrap();
/// assert_eq!(ts.as_slice(), &[0, 5, 9]);
/// assert!(Timesteps::read(&t, 9).is_err()); // 9 is out of 0..9
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timesteps {
    values: Vec<usize>,
}

impl Timesteps {
    /// Reads `t` (shape `[N]`) from its device (one read, see [`crate::host`]) and checks
    /// that every entry lies in `0..num_timesteps`.
    ///
    /// # Errors
    /// [`DiffusionError::TimestepOutOfRange`], or [`DiffusionError::TensorRead`] if the
    /// tensor cannot be read.
    pub fn read(t: &Tensor<1, Int>, num_timesteps: usize) -> Result<Self> {
        let raw: Vec<i64> = crate::host::read_vec(t.clone(), "timesteps")?;
        Self::from_values(&raw, num_timesteps)
    }

    /// `n` copies of timestep `t` (a sampler's visit: every example at one timestep).
    pub fn constant(n: usize, t: usize) -> Self {
        Self { values: vec![t; n] }
    }

    /// Host timesteps as they are; they are checked against `0..T` where they are used.
    pub fn new(values: Vec<usize>) -> Self {
        Self { values }
    }

    /// Checks every timestep against `0..num_timesteps`.
    ///
    /// # Errors
    /// [`DiffusionError::TimestepOutOfRange`] naming the first one outside.
    pub fn check_range(&self, num_timesteps: usize) -> Result<()> {
        match self.values.iter().position(|&t| t >= num_timesteps) {
            Some(index) => Err(DiffusionError::TimestepOutOfRange {
                timestep: i64::try_from(self.values[index]).unwrap_or(i64::MAX),
                index,
                num_timesteps,
            }),
            None => Ok(()),
        }
    }

    /// The timesteps as a `[N]` Int tensor on `device` (an upload).
    pub fn to_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let values: Vec<i64> = self.values.iter().map(|&t| t as i64).collect();
        Tensor::from_data(TensorData::new(values, [self.values.len()]), device)
    }

    /// Checks host-side timesteps against `0..num_timesteps`.
    pub fn from_values(values: &[i64], num_timesteps: usize) -> Result<Self> {
        let values = values
            .iter()
            .enumerate()
            .map(|(index, &timestep)| match usize::try_from(timestep) {
                Ok(v) if v < num_timesteps => Ok(v),
                _ => Err(DiffusionError::TimestepOutOfRange {
                    timestep,
                    index,
                    num_timesteps,
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { values })
    }

    /// The timesteps, in batch order.
    pub fn as_slice(&self) -> &[usize] {
        &self.values
    }

    /// The batch size `N`.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Checks that `like` has batch dimension `N` (its first dimension).
    pub fn check_batch<const D: usize>(&self, like: &Tensor<D>) -> Result<()> {
        let dims = like.dims();
        if D == 0 || dims[0] != self.values.len() {
            let mut expected = dims.to_vec();
            if let Some(batch) = expected.first_mut() {
                *batch = self.values.len();
            }
            return Err(DiffusionError::ShapeMismatch {
                what: "the tensor (dimension 0: one example per timestep)",
                expected,
                got: dims.to_vec(),
            });
        }
        Ok(())
    }

    /// `table[t_i]` for every example, shaped `[N, 1, ..., 1]` to broadcast against `like`,
    /// on `like`'s device and in its float type.
    ///
    /// # Shapes
    /// - `like`: `[N, ...]` (rank `D`)
    /// - output: `[N, 1, ..., 1]` (rank `D`)
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] if `like`'s first dimension is not `N`;
    /// [`DiffusionError::TimestepOutOfRange`] if `table` is shorter than a timestep needs.
    pub fn gather<const D: usize>(&self, table: &[f64], like: &Tensor<D>) -> Result<Tensor<D>> {
        self.check_range(table.len())?;
        self.gather_map(|t| table[t], like)
    }

    /// `f(t_i)` for every example, computed in `f64` on the host, shaped like
    /// [`Timesteps::gather`]'s output (`f` is called with each timestep as it is: the math
    /// functions check them against `0..T` first, see [`TimestepInput::host`]).
    /// For coefficients that combine several tables
    /// (`1/√ᾱ_t`, `√(1/ᾱ_t − 1)`, ...), so that they are rounded to the tensor's float
    /// type once, not once per factor.
    ///
    /// # Errors
    /// [`DiffusionError::ShapeMismatch`] if `like`'s first dimension is not `N`.
    pub fn gather_map<const D: usize>(
        &self,
        f: impl Fn(usize) -> f64,
        like: &Tensor<D>,
    ) -> Result<Tensor<D>> {
        self.check_batch(like)?;
        let (device, dtype) = (like.device(), like.dtype());
        let values: Vec<f64> = self.values.iter().map(|&t| f(t)).collect();
        let mut shape = [1usize; D];
        shape[0] = self.values.len();
        let data = TensorData::new(values, shape).convert_dtype(dtype);
        Ok(Tensor::from_data(data, (&device, dtype)))
    }
}

/// `n` copies of timestep `t` as a `[n]` Int tensor on `device`.
pub fn constant_timesteps(n: usize, t: usize, device: &Device) -> Tensor<1, Int> {
    Timesteps::constant(n, t).to_tensor(device)
}

/// Checks that two tensors have the same shape.
pub(crate) fn check_same_shape<const D: usize>(
    what: &'static str,
    expected: &Tensor<D>,
    got: &Tensor<D>,
) -> Result<()> {
    let (e, g) = (expected.dims(), got.dims());
    if e != g {
        return Err(DiffusionError::ShapeMismatch {
            what,
            expected: e.to_vec(),
            got: g.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn gather_broadcasts_to_any_rank() {
        let device = Device::flex();
        let t = Tensor::<1, Int>::from_ints([2, 0], &device);
        let ts = Timesteps::read(&t, 3).unwrap();
        let like = Tensor::<4>::zeros([2, 3, 4, 5], &device);
        let c = ts.gather(&[10.0, 20.0, 30.0], &like).unwrap();
        assert_eq!(c.dims(), [2, 1, 1, 1]);
        assert_eq!(c.try_into_vec_as::<f32>().unwrap(), vec![30.0, 10.0]);
        let like3 = Tensor::<3>::zeros([2, 7, 1], &device);
        let m = ts.gather_map(|t| t as f64 * 0.5, &like3).unwrap();
        assert_eq!(m.dims(), [2, 1, 1]);
        assert_eq!(m.try_into_vec_as::<f32>().unwrap(), vec![1.0, 0.0]);
    }

    #[test]
    fn host_timesteps_are_checked_where_they_are_used() {
        let device = Device::flex();
        let ts = Timesteps::new(vec![3, 10, 2]);
        let e = ts.host(10).unwrap_err();
        assert!(matches!(
            e,
            DiffusionError::TimestepOutOfRange {
                timestep: 10,
                index: 1,
                num_timesteps: 10
            }
        ));
        assert_eq!(ts.host(11).unwrap().as_slice(), &[3, 10, 2]);
        // The tensor form reads back to the same values and is checked the same way.
        let t = ts.tensor(&device);
        assert_eq!(t.host(11).unwrap().as_slice(), &[3, 10, 2]);
        assert!(t.host(10).is_err());
        // An empty batch is a valid (empty) batch.
        assert!(Timesteps::constant(0, 5).host(6).unwrap().is_empty());
        // In the math, a host batch of the wrong length is a shape error, not a panic.
        use crate::process::{ForwardProcess, VpProcess};
        let process = VpProcess::new(crate::schedule::ScheduleConfig::new().init().unwrap());
        let x0 = Tensor::<2>::zeros([2, 3], &device);
        let noise = x0.clone();
        let e = process.q_sample(x0, &Timesteps::new(vec![1, 2, 3]), noise);
        assert!(matches!(e, Err(DiffusionError::ShapeMismatch { .. })));
    }

    #[test]
    fn short_tables_and_wrong_batches_are_errors() {
        let device = Device::flex();
        let ts = Timesteps::from_values(&[4, 1], 10).unwrap();
        let like = Tensor::<2>::zeros([2, 2], &device);
        let e = ts.gather(&[0.0; 3], &like).unwrap_err();
        assert!(matches!(
            e,
            DiffusionError::TimestepOutOfRange {
                timestep: 4,
                index: 0,
                num_timesteps: 3
            }
        ));
        let wrong = Tensor::<2>::zeros([3, 2], &device);
        assert!(ts.gather(&[0.0; 10], &wrong).is_err());
        assert_eq!(ts.len(), 2);
        assert!(!ts.is_empty());
    }
}
