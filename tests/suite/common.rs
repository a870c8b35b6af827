//! Shared test helpers: the devices every test runs on, tensor <-> f64 conversions and
//! the reader of committed reference vectors.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};

use burn::tensor::{Device, Int, Tensor, TensorData};

/// The devices the whole suite runs on, Flex first. Every device-level test iterates over
/// this list, so adding a device here extends the entire suite.
///
/// Built with the `wgpu` feature and run with `BURN_DIFFUSION_TEST_WGPU=1`, the list also
/// has the default wgpu device (`.ci/test-wgpu` runs it on Mesa's lavapipe).
#[allow(deprecated)] // NdArray is deprecated in Burn 0.22 but still a supported backend.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex()), ("ndarray", Device::ndarray())];
    #[cfg(feature = "wgpu")]
    if std::env::var_os("BURN_DIFFUSION_TEST_WGPU").is_some() {
        let kind = burn::tensor::DeviceKind::DefaultDevice;
        devices.push(("wgpu", Device::wgpu(kind)));
    }
    devices
}

/// The absolute error a device's f32 `exp` and `log` may add on values of order 1, for
/// tests whose tolerance is f32 rounding: 0 on the CPU devices (libm-grade functions);
/// on wgpu, Vulkan's precision rules (SPIR-V's GLSL.std.450: `Log` within 2⁻²¹ absolute
/// on [0.5, 2], `Exp` within 3 + 2|x| ulp), about 5e-7.
pub fn transcendental_slack(device: &Device) -> f64 {
    if format!("{device:?}").contains("Wgpu") {
        5e-7
    } else {
        0.0
    }
}

/// Runs `check` once per device of [`devices`], naming the device on failure.
pub fn on_each_device(check: impl Fn(&Device)) {
    for (name, device) in devices() {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&device)));
        if let Err(panic) = result {
            eprintln!("failure on device {name}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// `model` with seeded N(0, 0.1²) noise added to every float parameter, so that layers
/// initialized to zero (the UNet's output convolutions) matter to the output too.
pub fn jittered<M: Module>(model: M, seed: u64) -> M {
    struct Jitter(u64);
    impl ModuleMapper for Jitter {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.0 += 1;
            let seed = self.0;
            param.map(|t| {
                let noise = burn_diffusion::noise::randn::<D>(t.shape(), seed, &t.device());
                t + noise * 0.1
            })
        }
    }
    model.map(&mut Jitter(seed))
}

/// Every float parameter's values, in the module's traversal order.
pub fn weights<M: Module>(model: &M) -> Vec<f32> {
    struct Values(Vec<f32>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().try_into_vec_as::<f32>().unwrap());
        }
    }
    let mut v = Values(Vec::new());
    model.visit(&mut v);
    v.0
}

/// A fresh, empty folder for one test (`group` names the test file).
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "burn-diffusion-{group}-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names of the `step-*` checkpoint directories under `root`, sorted.
pub fn step_dirs(root: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    names
}

/// A float tensor from `f64` values (rounded to f32) with the given shape.
pub fn tensor<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let v: Vec<f32> = values.iter().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// An Int tensor of timesteps.
pub fn timesteps(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|x| *x as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// The values of a float tensor, row-major, as f64.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.try_into_vec_as::<f32>()
        .expect("readable tensor")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Asserts |got − want| ≤ abs + rel·|want| elementwise, naming the first failure.
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= abs + rel * w.abs() || (g == w);
        assert!(ok, "{what}[{i}]: got {g}, want {w} (rel {rel}, abs {abs})");
    }
}

/// Named vectors from a file under `tests/data/reference/` (format: `name v1 v2 ...`).
pub struct Reference {
    vectors: HashMap<String, Vec<f64>>,
}

impl Reference {
    /// Parses every `*.txt` file under `tests/data/reference/` into one map (vector names
    /// are unique across files).
    pub fn load() -> Self {
        let dir = format!("{}/tests/data/reference", env!("CARGO_MANIFEST_DIR"));
        let mut text = String::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "txt") {
                text += &std::fs::read_to_string(&path).unwrap();
                text.push('\n');
            }
        }
        let vectors = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|line| {
                let mut parts = line.split_whitespace();
                let name = parts.next().unwrap().to_string();
                let vals = parts
                    .map(|p| match p {
                        "nan" => f64::NAN,
                        "inf" => f64::INFINITY,
                        "-inf" => f64::NEG_INFINITY,
                        _ => p.parse().unwrap_or_else(|e| panic!("{name}: {p}: {e}")),
                    })
                    .collect();
                (name, vals)
            })
            .collect();
        Self { vectors }
    }

    /// The vector called `name`.
    #[track_caller]
    pub fn get(&self, name: &str) -> &[f64] {
        self.vectors
            .get(name)
            .unwrap_or_else(|| panic!("reference vector {name} missing"))
    }

    /// The vector called `name`, as non-negative integers.
    #[track_caller]
    pub fn get_usize(&self, name: &str) -> Vec<usize> {
        self.get(name).iter().map(|v| *v as usize).collect()
    }

    /// Whether a vector called `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.vectors.contains_key(name)
    }

    /// All vector names starting with `prefix`.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .vectors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        names
    }
}

/// A JSON array of numbers as `f32`s (the fixtures' vectors).
pub fn json_floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a JSON number") as f32)
        .collect()
}

/// max |got − want| / max(1, max |want|): a loop's error relative to its samples' scale.
pub fn scaled_error<const D: usize>(got: &Tensor<D>, want: &serde_json::Value) -> f64 {
    let got: Vec<f32> = got.clone().into_data().try_to_vec().expect("float data");
    let want = json_floats(want);
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs() as f64));
    got.iter()
        .zip(&want)
        .fold(0f64, |m, (g, w)| m.max((*g as f64 - *w as f64).abs()))
        / scale
}
