//! A GPU-only user's program on a `cuda` device (see `../gpu_program.rs`).

use burn::tensor::Device;

#[path = "../../gpu_program.rs"]
mod gpu_program;

fn main() -> burn_diffusion::Result<()> {
    gpu_program::run(Device::cuda(0))
}
