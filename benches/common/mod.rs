//! What the benches share: the devices they run on.

use burn::tensor::{Device, Tensor};

/// The devices named by `BENCH_DEVICES` (comma-separated: `flex`, `ndarray`, and `tch` with the `tch` feature), or by
/// `default` when it is not set.
#[allow(deprecated)] // NdArray is deprecated in Burn 0.22 but still benchmarked.
pub fn devices(default: &str) -> Vec<(&'static str, Device)> {
    let wanted = std::env::var("BENCH_DEVICES").unwrap_or_else(|_| default.into());
    let mut out = Vec::new();
    for name in wanted.split(',') {
        match name.trim() {
            "flex" => out.push(("flex", Device::flex())),
            "ndarray" => out.push(("ndarray", Device::ndarray())),
            #[cfg(feature = "tch")]
            "tch" => out.push(("tch", Device::libtorch())),
            other => eprintln!("unknown device {other:?} ignored"),
        }
    }
    out
}

#[allow(dead_code)] // not every bench reads back this way
/// Element `i` of a tensor (flattened), read back: it waits for the ops that made it and
/// copies 4 bytes.
pub trait ScalarAt {
    /// The element, as `f32`.
    fn into_scalar_at(self, i: usize) -> f32;
}

impl<const D: usize> ScalarAt for Tensor<D> {
    fn into_scalar_at(self, i: usize) -> f32 {
        self.reshape([-1]).slice(i..i + 1).into_scalar()
    }
}
