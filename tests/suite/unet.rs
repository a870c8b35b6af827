//! The reference UNet: the paper's parameter count, shapes, configuration errors,
//! training steps, batch independence in eval mode and class conditioning.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use burn_diffusion::{
    Denoiser, Loss,
    loss::{SimpleLoss, Weighting},
    model::{UNet, UNetConfig},
    noise::randn,
    prediction::Prediction,
    process::VpProcess,
    schedule::ScheduleConfig,
};

use crate::common::{assert_close, values};

/// The CIFAR-10 preset has exactly the 35,746,307 parameters of the official
/// implementation (Ho et al. 2020, `diffusion_tf`).
#[test]
fn cifar10_preset_has_the_papers_parameter_count() {
    let unet = UNetConfig::cifar10().init(&Device::flex()).unwrap();
    assert_eq!(unet.num_params(), 35_746_307);
}

#[test]
fn output_shapes_for_several_configs() {
    let device = Device::flex();
    let cases = [
        (UNetConfig::digits(), 8, 1),
        (UNetConfig::mnist(), 28, 1),
        (
            UNetConfig::new(3, 6, 16)
                .with_base_channels(16)
                .with_channel_multipliers(vec![1, 2, 2])
                .with_res_blocks(1)
                .with_attention_resolutions(vec![8])
                .with_norm_groups(4),
            16,
            6,
        ),
    ];
    for (config, res, out) in cases {
        let unet = config.init(&device).unwrap();
        let cin = config.in_channels;
        let x = randn::<4>([3, cin, res, res], 1, &device);
        let t = Tensor::<1, Int>::from_ints([0, 10, 999], &device);
        assert_eq!(
            unet.denoise(x, t, None).dims(),
            [3, out, res, res],
            "{config:?}"
        );
    }
}

#[test]
fn bad_configurations_are_errors() {
    let device = Device::flex();
    let e = UNetConfig {
        resolution: 30,
        ..UNetConfig::cifar10()
    }
    .init(&device)
    .unwrap_err();
    assert!(e.to_string().contains("2^(levels−1) = 8"), "{e}");
    let e = UNetConfig::cifar10()
        .with_base_channels(48)
        .init(&device)
        .unwrap_err();
    assert!(e.to_string().contains("norm_groups"), "{e}");
    assert!(
        UNetConfig::digits()
            .with_channel_multipliers(vec![])
            .init(&device)
            .is_err()
    );
    assert!(
        UNetConfig::digits()
            .with_dropout(1.0)
            .init(&device)
            .is_err()
    );
    assert!(
        UNetConfig::digits()
            .with_res_blocks(0)
            .init(&device)
            .is_err()
    );
    // Configurations that used to pass validation and then panic or be half ignored: an
    // embedding width below 2, 65 levels (2^64 overflowed), an overflowing channel count,
    // an attention resolution the network never reaches (8×8 input: 8 and 4 only).
    let error = |config: UNetConfig| config.init(&device).unwrap_err().to_string();
    let e = error(
        UNetConfig::digits()
            .with_base_channels(1)
            .with_norm_groups(1),
    );
    assert!(e.contains("base_channels"), "{e}");
    let e = error(UNetConfig::digits().with_channel_multipliers(vec![1; 65]));
    assert!(e.contains("65 levels"), "{e}");
    let e = error(
        UNetConfig::digits()
            .with_norm_groups(1)
            .with_channel_multipliers(vec![1, usize::MAX]),
    );
    assert!(e.contains("overflows"), "{e}");
    let e = error(UNetConfig::digits().with_attention_resolutions(vec![4, 16]));
    assert!(
        e.contains("16 is not one of the network's resolutions [8, 4]"),
        "{e}"
    );
}

/// A few AdamW steps of the simplified loss on a fixed batch of a tiny config lower the
/// loss; the trained model (non-zero output layers) is then used for the eval checks.
fn trained_tiny(device: &Device) -> UNet {
    let config = UNetConfig::digits()
        .with_num_classes(Some(3))
        .with_dropout(0.0);
    let process = VpProcess::new(
        ScheduleConfig::new()
            .with_num_timesteps(100)
            .init()
            .unwrap(),
    );
    let loss = SimpleLoss::new(process, Prediction::Epsilon, Weighting::Uniform).unwrap();
    let ad = device.clone().autodiff();
    let mut model = config.init(&ad).unwrap().train();
    let x0 = randn::<4>([8, 1, 8, 8], 1, &ad).tanh();
    let t = burn_diffusion::loss::uniform_timesteps(8, 100, 2, &ad).unwrap();
    let noise = randn::<4>([8, 1, 8, 8], 3, &ad);
    let mut optim = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..5 {
        let l = loss
            .loss(&model, x0.clone(), &t, noise.clone())
            .unwrap()
            .loss
            .mean();
        losses.push(l.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    let last: f32 = loss
        .loss(&model, x0, &t, noise)
        .unwrap()
        .loss
        .mean()
        .into_scalar();
    println!("tiny UNet, 5 AdamW steps: loss {losses:?} -> {last}");
    assert!(
        last < losses[0],
        "loss did not go down: {losses:?} -> {last}"
    );
    model.valid()
}

#[test]
fn training_lowers_the_loss_and_eval_is_batch_independent_and_conditional() {
    let device = Device::flex();
    let model = trained_tiny(&device);
    let x = randn::<4>([4, 1, 8, 8], 7, &device);
    let t = Tensor::<1, Int>::from_ints([5, 50, 90, 20], &device);
    let labels = Tensor::<1, Int>::from_ints([0, 1, 2, 3], &device);
    let full = values(model.denoise(x.clone(), t.clone(), Some(labels.clone())));
    // Example 2 alone gives what it gave inside the batch.
    let alone = values(model.denoise(
        x.clone().narrow(0, 2, 1),
        t.clone().narrow(0, 2, 1),
        Some(labels.clone().narrow(0, 2, 1)),
    ));
    assert_close(
        "example 2 alone vs in batch",
        &alone,
        &full[2 * 64..3 * 64],
        1e-4,
        1e-5,
    );
    // Changing the label changes the output.
    let other = values(model.denoise(
        x,
        t,
        Some(Tensor::<1, Int>::from_ints([1, 1, 0, 3], &device)),
    ));
    let diff: f64 = full.iter().zip(&other).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff > 1e-4, "class labels do not change the output: {diff}");
    assert_eq!(
        &full[3 * 64..],
        &other[3 * 64..],
        "example 3 kept its label"
    );
}

/// Save and load round-trip: the loaded model gives the same outputs; weights of another
/// configuration are rejected with an error, and so is a missing checkpoint.
#[test]
fn save_and_load_round_trip() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("burn-diffusion-unet-{}", std::process::id()));
    let model = trained_tiny(&device);
    let config = UNetConfig::digits()
        .with_num_classes(Some(3))
        .with_dropout(0.0);
    let x = randn::<4>([2, 1, 8, 8], 11, &device);
    let t = Tensor::<1, Int>::from_ints([3, 70], &device);
    let labels = Some(Tensor::<1, Int>::from_ints([0, 2], &device));
    let before = values(model.denoise(x.clone(), t.clone(), labels.clone()));
    model.save(&config, &dir).unwrap();
    let (loaded, loaded_config) = UNet::load(&dir, &device).unwrap();
    assert_eq!(loaded_config, config);
    assert_eq!(values(loaded.denoise(x, t, labels)), before);
    let other = UNetConfig::digits()
        .with_base_channels(16)
        .init(&device)
        .unwrap();
    let e = other.load_weights(dir.join("weights.bpk")).unwrap_err();
    assert!(e.to_string().contains("weights.bpk"), "{e}");
    assert!(UNet::load(dir.join("missing"), &device).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// The MLP denoiser: shapes and configuration errors.
#[test]
fn mlp_shapes_and_errors() {
    let device = Device::flex();
    let mlp = burn_diffusion::model::MlpConfig::new(2)
        .with_out_dim(Some(4))
        .init(&device)
        .unwrap();
    let out = mlp.denoise(
        randn([7, 2], 1, &device),
        Tensor::<1, Int>::from_ints([0, 1, 2, 3, 4, 5, 6], &device),
        None,
    );
    assert_eq!(out.dims(), [7, 4]);
    assert!(
        burn_diffusion::model::MlpConfig::new(0)
            .init(&device)
            .is_err()
    );
    assert!(
        burn_diffusion::model::MlpConfig::new(2)
            .with_layers(0)
            .init(&device)
            .is_err()
    );
}
