//! What the benches share: the devices they run on.

use burn::tensor::Device;

/// The devices named by `BENCH_DEVICES` (comma-separated: `flex`, `ndarray`), or by
/// `default` when it is not set.
#[allow(deprecated)] // NdArray is deprecated in Burn 0.22 but still benchmarked.
pub fn devices(default: &str) -> Vec<(&'static str, Device)> {
    let wanted = std::env::var("BENCH_DEVICES").unwrap_or_else(|_| default.into());
    let mut out = Vec::new();
    for name in wanted.split(',') {
        match name.trim() {
            "flex" => out.push(("flex", Device::flex())),
            "ndarray" => out.push(("ndarray", Device::ndarray())),
            other => eprintln!("unknown device {other:?} ignored"),
        }
    }
    out
}
