//! Train the reference convolutional VAE on the 8×8 digits (or MNIST), then evaluate it on
//! held-out images: the ELBO and the importance-weighted log-likelihood (Burda et al. 2016),
//! in nats per image and bits per dimension.
//!
//! ```text
//! cargo run --release --example vae
//! cargo run --release --example vae -- --dataset mnist
//! ```
//!
//! Writes `out/vae/reconstructions.png` (rows of held-out images, each followed by a row
//! of their reconstructions) and `out/vae/samples.png` (decoder means for z ~ N(0, I)).
//! The default run (digits, 2000 steps) takes about a minute on two CPU cores (Flex
//! backend); `--dataset mnist` (600 steps on 9,500 of the 10,000 MNIST test images,
//! evaluated on the other 500) about four minutes.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use burn_diffusion::data::ImageDataset;
use burn_diffusion::{
    image::write_png_grid_scaled,
    noise::{SeededRng, randn},
    progress::ConsoleProgress,
    vae::{Likelihood, Vae, VaeConfig, nll_bits_per_dim},
};
use clap::{Parser, ValueEnum};
use common::{exit_on_error, positive};

/// vae: train a convolutional VAE, write reconstructions and prior samples, report the
/// held-out ELBO and importance-weighted log-likelihood
#[derive(Parser, Debug)]
#[command(name = "vae")]
struct Cli {
    /// dataset (mnist: data/mnist, the 10,000 MNIST test images)
    #[arg(long, value_enum, default_value_t = DatasetName::Digits)]
    dataset: DatasetName,
    /// decoder likelihood: bernoulli (pixels mapped to [0, 1]) or gaussian (σ = 0.1 on
    /// [−1, 1])
    #[arg(long, value_enum, default_value_t = LikelihoodName::Bernoulli)]
    likelihood: LikelihoodName,
    /// training steps [default: 2000 digits, 600 mnist]
    #[arg(long, value_parser = positive)]
    steps: Option<usize>,
    /// batch size
    #[arg(long, default_value_t = 64, value_parser = positive)]
    batch: usize,
    /// latent size [default: 8 digits, 16 mnist]
    #[arg(long, value_parser = positive)]
    latent: Option<usize>,
    /// base channels of the VAE [default: the preset's, 16]
    #[arg(long, value_parser = positive)]
    channels: Option<usize>,
    /// AdamW learning rate
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// images kept out of training [default: 297 digits, 500 mnist]
    #[arg(long)]
    held_out: Option<usize>,
    /// samples of the importance-weighted log-likelihood
    #[arg(long, default_value_t = 100, value_parser = positive)]
    iw_k: usize,
    /// seed of split, weights, noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// output folder
    #[arg(long, default_value = "out/vae")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetName {
    Digits,
    Mnist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LikelihoodName {
    Bernoulli,
    Gaussian,
}

/// Images per evaluation batch (bounds memory for MNIST with k samples).
const EVAL_BATCH: usize = 250;

/// The command line with the dataset's defaults filled in.
struct Args {
    dataset: DatasetName,
    likelihood: Likelihood,
    steps: usize,
    batch: usize,
    latent: usize,
    channels: Option<usize>,
    lr: f64,
    held_out: usize,
    iw_k: usize,
    seed: u64,
    out: PathBuf,
}

fn parse_args() -> Args {
    let cli = Cli::parse();
    let pick = |d: usize, m: usize| match cli.dataset {
        DatasetName::Digits => d,
        DatasetName::Mnist => m,
    };
    let likelihood = match cli.likelihood {
        LikelihoodName::Bernoulli => Likelihood::Bernoulli,
        // σ = 0.1 on data in [−1, 1].
        LikelihoodName::Gaussian => Likelihood::Gaussian {
            log_variance: (0.01f64).ln(),
        },
    };
    Args {
        dataset: cli.dataset,
        likelihood,
        steps: cli.steps.unwrap_or(pick(2000, 600)),
        batch: cli.batch,
        latent: cli.latent.unwrap_or(pick(8, 16)),
        channels: cli.channels,
        lr: cli.lr,
        held_out: cli.held_out.unwrap_or(pick(297, 500)),
        iw_k: cli.iw_k,
        seed: cli.seed,
        out: cli.out,
    }
}

fn main() {
    let args = parse_args();
    exit_on_error(run(&args));
}

fn run(args: &Args) -> Result<(), String> {
    let start = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (data, config) = if args.dataset == DatasetName::Digits {
        let data = ImageDataset::load_digits(root.join("data/digits/digits.csv.gz"));
        (data, VaeConfig::digits())
    } else {
        let data = ImageDataset::load_idx(root.join("data/mnist/t10k-images-idx3-ubyte.gz"), None);
        (data, VaeConfig::mnist())
    };
    let (train, held_out) = data
        .map_err(msg)?
        .split(args.held_out, args.seed)
        .map_err(msg)?;
    let config = VaeConfig {
        latent_size: args.latent,
        likelihood: args.likelihood,
        base_channels: args.channels.unwrap_or(config.base_channels),
        ..config
    };
    println!(
        "{}: {} training and {} held-out images of {:?}; latent {}, {:?} decoder",
        args.dataset
            .to_possible_value()
            .expect("not skipped")
            .get_name(),
        train.len(),
        held_out.len(),
        train.image_shape(),
        args.latent,
        args.likelihood
    );

    let device = Device::flex();
    device.seed(args.seed);
    let ad = device.clone().autodiff();
    let mut vae = config.init(&ad).map_err(msg)?.train();
    println!("{} parameters", vae.num_params());
    let mut optim = AdamWConfig::new().init();
    let mut rng = SeededRng::new(args.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut cursor = order.len();
    let progress = ConsoleProgress::new(args.steps, "vae");
    for step in 0..args.steps {
        if cursor + args.batch > order.len() {
            rng.shuffle(&mut order);
            cursor = 0;
        }
        let take = args.batch.min(order.len());
        let indices = &order[cursor..cursor + take];
        cursor += take;
        let x = to_likelihood_range(train.batch(indices, &ad).map_err(msg)?, &args.likelihood);
        let noise = randn([take, args.latent], rng.next_u64(), &ad);
        let loss = vae.elbo(x, noise).map_err(msg)?.loss().mean();
        let value: f64 = loss.clone().into_scalar::<f32>().into();
        let grads = GradientsParams::from_grads(loss.backward(), &vae);
        vae = optim.step(args.lr, vae, grads);
        progress.update(step + 1, Some(value));
    }
    progress.finish();

    let vae = vae.valid();
    let trained = Trained {
        vae: &vae,
        held_out: &held_out,
        args,
        device: &device,
    };
    trained.evaluate()?;
    trained.write_images()?;
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Pixels in [−1, 1] as the likelihood expects them: [0, 1] for the Bernoulli decoder.
fn to_likelihood_range(x: Tensor<4>, likelihood: &Likelihood) -> Tensor<4> {
    match likelihood {
        Likelihood::Bernoulli => (x + 1.0) * 0.5,
        Likelihood::Gaussian { .. } => x,
    }
}

/// The inverse of [`to_likelihood_range`], for pictures.
fn to_picture_range(x: Tensor<4>, likelihood: &Likelihood) -> Tensor<4> {
    match likelihood {
        Likelihood::Bernoulli => x * 2.0 - 1.0,
        Likelihood::Gaussian { .. } => x,
    }
}

/// The trained model with what evaluating it needs.
struct Trained<'a> {
    vae: &'a Vae,
    held_out: &'a ImageDataset,
    args: &'a Args,
    device: &'a Device,
}

impl Trained<'_> {
    /// Held-out ELBO (one reparameterized sample per image) and importance-weighted
    /// log-likelihood with k samples, averaged over the held-out images.
    fn evaluate(&self) -> Result<(), String> {
        let Self {
            vae,
            held_out,
            args,
            device,
        } = *self;
        let dims: usize = held_out.image_shape().iter().product();
        // Per image: ELBO, KL, IW log-likelihood (nats), then the two in bits/dim.
        let mut columns: [Vec<f64>; 5] = Default::default();
        let indices: Vec<usize> = (0..held_out.len()).collect();
        let progress = ConsoleProgress::new(indices.len(), format!("evaluate (k = {})", args.iw_k));
        for (b, chunk) in indices.chunks(EVAL_BATCH).enumerate() {
            let x = to_likelihood_range(
                held_out.batch(chunk, device).map_err(msg)?,
                &args.likelihood,
            );
            let seed = args
                .seed
                .wrapping_add(1 << 40)
                .wrapping_add((b as u64) << 32);
            let bound = vae.elbo_seeded(x.clone(), seed).map_err(msg)?;
            let ll = vae
                .importance_weighted_log_likelihood(x, args.iw_k, seed + 1)
                .map_err(msg)?;
            let parts = [
                bound.elbo.clone(),
                bound.kl.clone(),
                ll.clone(),
                bound.nll_bits_per_dim(),
                nll_bits_per_dim(ll, dims),
            ];
            for (column, part) in columns.iter_mut().zip(parts) {
                column.extend(read(part)?);
            }
            progress.update(columns[0].len(), Some(-mean(&columns[2])));
        }
        progress.finish();
        let [elbo, kl, iw, elbo_bpd, iw_bpd] = columns.map(|c| mean(&c));
        let unit = match args.likelihood {
            Likelihood::Bernoulli => {
                "Bernoulli decoder on pixel intensities in [0, 1]: bits/dim of the Bernoulli \
                 cross-entropy (a discrete likelihood only for binary pixels), not the \
                 discrete 8-bit bits/dim of image models"
            }
            Likelihood::Gaussian { .. } => {
                "Gaussian decoder, σ = 0.1 on [−1, 1]: bits/dim of a continuous density \
                 (can be negative), not the discrete 8-bit bits/dim of image models"
            }
        };
        println!("held-out evaluation on {} images ({unit}):", held_out.len());
        println!(
            "  ELBO                     {elbo:>9.3} nats/image  {elbo_bpd:>7.4} bits/dim (NLL bound)  KL {kl:.3} nats"
        );
        println!(
            "  IW log-likelihood k={:<4} {iw:>9.3} nats/image  {iw_bpd:>7.4} bits/dim  (minus the ELBO: {:.3} nats)",
            args.iw_k,
            iw - elbo
        );
        Ok(())
    }

    /// reconstructions.png: 4 pairs of rows (8 held-out images, then their reconstructions);
    /// samples.png: 64 decoder means for z ~ N(0, I).
    fn write_images(&self) -> Result<(), String> {
        let (vae, held_out, args) = (self.vae, self.held_out, self.args);
        let device = self.device;
        let scale = if held_out.image_shape()[1] <= 8 { 4 } else { 1 };
        let n = 32.min(held_out.len());
        let indices: Vec<usize> = (0..n).collect();
        let x = held_out.batch(&indices, device).map_err(msg)?;
        let recon = vae
            .reconstruct(to_likelihood_range(x.clone(), &args.likelihood))
            .map_err(msg)?;
        let recon = to_picture_range(recon, &args.likelihood);
        let mut rows = Vec::new();
        for start in (0..n).step_by(8) {
            let end = (start + 8).min(n);
            rows.push(x.clone().narrow(0, start, end - start));
            rows.push(recon.clone().narrow(0, start, end - start));
        }
        let path = args.out.join("reconstructions.png");
        write_png_grid_scaled(&path, Tensor::cat(rows, 0), 8, scale).map_err(msg)?;
        println!("wrote {}", path.display());
        let samples = vae
            .sample_prior(64, args.seed.wrapping_add(7), device)
            .map_err(msg)?;
        let path = args.out.join("samples.png");
        write_png_grid_scaled(&path, to_picture_range(samples, &args.likelihood), 8, scale)
            .map_err(msg)?;
        println!("wrote {}", path.display());
        Ok(())
    }
}

fn msg(e: burn_diffusion::DiffusionError) -> String {
    e.to_string()
}

fn read(t: Tensor<1>) -> Result<Vec<f64>, String> {
    let v = t.try_into_vec_as::<f32>().map_err(|e| format!("{e:?}"))?;
    Ok(v.into_iter().map(f64::from).collect())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}
