//! Train the small digits classifier whose features score generated digits (the
//! Fréchet distance of `mnist`, an MNIST-scale stand-in for FID, and the accuracy of
//! class-conditional samples), and write its weights.
//!
//! ```text
//! cargo run --release --example classifier   # writes data/digits/classifier.bpk
//! ```
//!
//! It trains on the same split as `mnist` (256 held-out images, seed 0) and reports the
//! held-out accuracy.

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use burn_diffusion::data::ImageDataset;
use burn_diffusion::noise::SeededRng;
use clap::Parser;
use common::classifier::Classifier;
use common::exit_on_error;

/// classifier: train the digits classifier that scores samples
#[derive(Parser, Debug)]
#[command(name = "classifier")]
struct Args {
    /// training steps
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// images kept out of training (as mnist's --held-out)
    #[arg(long, default_value_t = 256)]
    held_out: usize,
    /// seed of the split (as mnist's --seed) and of training
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// where to write the weights [default: data/digits/classifier.bpk]
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let Args {
        steps,
        held_out,
        seed,
        out,
    } = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let out = out.unwrap_or_else(|| root.join("digits").join("classifier.bpk"));
    let device = Device::flex();
    let data = exit_on_error(ImageDataset::load_digits(
        root.join("digits").join("digits.csv.gz"),
    ));
    let data = exit_on_error(data.quantized(256));
    let (train, held) = exit_on_error(data.split(held_out, seed));
    let pixels: usize = data.image_shape().iter().product();

    device.seed(seed);
    let train_device = device.clone().autodiff();
    let mut model = Classifier::new(pixels, &train_device).train();
    let mut optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
    let loss = CrossEntropyLossConfig::new().init(&train_device);
    let mut rng = SeededRng::new(seed ^ 0xC1A5);
    let batch = 128;
    for step in 0..steps {
        let indices: Vec<usize> = (0..batch).map(|_| rng.next_below(train.len())).collect();
        let x = exit_on_error(train.batch(&indices, &train_device));
        // A little pixel noise, so that the features are smooth around the data.
        let x = x.clone() + x.random_like(burn::tensor::Distribution::Normal(0.0, 0.05));
        let y = exit_on_error(train.batch_labels(&indices, &train_device));
        let value = loss.forward(model.logits(x), y).mean();
        if step % 500 == 0 {
            println!(
                "step {step}: loss {:.4}",
                value.clone().into_scalar::<f32>()
            );
        }
        let grads = GradientsParams::from_grads(value.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }

    let model = model.valid().to_device(&device);
    let everyone: Vec<usize> = (0..held.len()).collect();
    let x = exit_on_error(held.batch(&everyone, &device));
    let labels: Vec<i64> = held.labels().iter().map(|l| i64::from(*l)).collect();
    let accuracy = exit_on_error(model.accuracy(x, &labels));
    println!(
        "held-out accuracy: {:.2} % ({} images)",
        100.0 * accuracy,
        held.len()
    );
    exit_on_error(model.save_file(&out).map_err(|e| format!("{e:?}")));
    println!("wrote {}", out.display());
}
