//! Every op's backward rule against central finite differences (f64) and against candle's own
//! backprop on the same computation: relative error below 1e-6.

mod common;

use candle_core::{Device, Tensor};
use common::inputs;

fn ids(v: &[u32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn binary_ops_with_broadcasting() {
    for (i, (a, b)) in [
        (&[2usize, 3, 4][..], &[3usize, 1][..]),
        (&[3, 4], &[3, 4]),
        (&[4], &[2, 3, 4]),
        (&[2, 1, 4], &[3, 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let xs = inputs(i as u64, &[a, b], 0.5, 2.0);
        gradcheck!("add", xs, |v| v[0].add(&v[1]));
        gradcheck!("sub", xs, |v| v[0].sub(&v[1]));
        gradcheck!("mul", xs, |v| v[0].mul(&v[1]));
        gradcheck!("div", xs, |v| v[0].div(&v[1]));
    }
}

#[test]
fn unary_ops() {
    let pos = inputs(10, &[&[3, 4]], 0.5, 2.0);
    let any = inputs(11, &[&[3, 4]], -2.0, 2.0);
    gradcheck!("neg", any, |v| v[0].neg());
    gradcheck!("affine", any, |v| v[0].affine(-1.5, 0.25));
    gradcheck!("powf", pos, |v| v[0].powf(2.5));
    gradcheck!("powf negative exponent", pos, |v| v[0].powf(-1.5));
    gradcheck!("sqr", any, |v| v[0].sqr());
    gradcheck!("sqrt", pos, |v| v[0].sqrt());
    gradcheck!("exp", any, |v| v[0].exp());
    gradcheck!("log", pos, |v| v[0].log());
    gradcheck!("abs", any, |v| v[0].abs());
    gradcheck!("clamp", any, |v| v[0].clamp(-0.7, 0.9));
    gradcheck!("relu", any, |v| v[0].relu());
    gradcheck!("sigmoid", any, |v| v[0].sigmoid());
    gradcheck!("tanh", any, |v| v[0].tanh());
    let wide = inputs(12, &[&[4, 5]], -4.0, 4.0);
    gradcheck!("gelu", wide, |v| v[0].gelu());
    gradcheck!("gelu_tanh", wide, |v| v[0].gelu_tanh());
    gradcheck!("silu", wide, |v| v[0].silu());
}

#[test]
fn causal_softmax_masks_the_future() {
    let xs = inputs(31, &[&[2, 2, 4, 4], &[2, 2, 4, 4]], -3.0, 3.0);
    gradcheck!("causal_softmax", xs, |v| v[0].causal_softmax()?.mul(&v[1]));
    let xs = inputs(32, &[&[5, 5], &[5, 5]], -3.0, 3.0);
    gradcheck!("causal_softmax 2-D", xs, |v| v[0].causal_softmax()?.mul(&v[1]));
}

#[test]
fn causal_attention_with_and_without_dropout() {
    use taper_autograd::AttentionDropout;
    // Two heads of width 3 over a context of 5; the output weighted so every element counts.
    let xs = inputs(33, &[&[2, 5, 18], &[2, 5, 6]], -1.5, 1.5);
    gradcheck!("causal_attention", xs, |v| v[0].causal_attention(2, None)?.mul(&v[1]));
    gradcheck!("causal_attention dropout", xs, |v| v[0]
        .causal_attention(2, Some(AttentionDropout { p: 0.3, seed: 11 }))?
        .mul(&v[1]));
    // A context longer than the kernel's blocks of 64 query rows.
    let long = inputs(34, &[&[1, 70, 6], &[1, 70, 2]], -1.0, 1.0);
    gradcheck!("causal_attention long", long, |v| v[0].causal_attention(1, None)?.mul(&v[1]));
}

#[test]
fn batch_norm_over_every_dimension_but_the_channels() {
    // [N, C], [N, C, L] and [N, C, H, W]; the output weighted so every element counts.
    for (i, shape) in [&[4usize, 3][..], &[2, 3, 5], &[2, 3, 2, 3]].into_iter().enumerate() {
        let xs = inputs(40 + i as u64, &[shape, &[3], &[3], shape], -2.0, 2.0);
        gradcheck!("batch_norm", xs, |v| v[0].batch_norm(Some(&v[1]), Some(&v[2]), 1e-5)?.mul(&v[3]));
        gradcheck!("batch_norm plain", xs, |v| v[0].batch_norm(None, None, 1e-3)?.mul(&v[3]));
        gradcheck!("batch_norm weight only", xs, |v| v[0].batch_norm(Some(&v[1]), None, 1e-5)?.mul(&v[3]));
    }
}

#[test]
fn layer_norm_with_and_without_weight_and_bias() {
    let xs = inputs(30, &[&[2, 3, 5], &[5], &[5]], -2.0, 2.0);
    gradcheck!("layer_norm", xs, |v| v[0].layer_norm(Some(&v[1]), Some(&v[2]), 1e-5));
    gradcheck!("layer_norm weight only", xs, |v| v[0]
        .layer_norm(Some(&v[1]), None, 1e-5)?
        .mul(&v[2].reshape(&[1, 1, 5])?));
    gradcheck!("layer_norm plain", xs, |v| v[0]
        .layer_norm(None, None, 1e-5)?
        .mul(&v[1].reshape(&[1, 1, 5])?));
    gradcheck!("layer_norm bias only", xs, |v| v[0].layer_norm(None, Some(&v[2]), 0.1)?.sqr());
}

#[test]
fn matmul_plain_batched_and_broadcast() {
    gradcheck!("matmul", inputs(20, &[&[3, 4], &[4, 5]], -1.0, 1.0), |v| v[0].matmul(&v[1]));
    gradcheck!("matmul batched", inputs(21, &[&[2, 3, 4], &[2, 4, 5]], -1.0, 1.0), |v| v[0].matmul(&v[1]));
    gradcheck!("matmul broadcast", inputs(22, &[&[2, 3, 4], &[4, 5]], -1.0, 1.0), |v| v[0].matmul(&v[1]));
    gradcheck!("matmul of a transpose", inputs(23, &[&[4, 3], &[4, 5]], -1.0, 1.0), |v| v[0]
        .transpose(0, 1)?
        .matmul(&v[1]));
    // Attention's layout: [B, T, H, d] viewed as [B, H, T, d], times its own transpose.
    gradcheck!("matmul 4-D of head views", inputs(24, &[&[2, 3, 2, 4], &[2, 3, 2, 4]], -1.0, 1.0), |v| v[0]
        .transpose(1, 2)?
        .matmul(&v[1].transpose(1, 2)?.transpose(2, 3)?));
}

#[test]
fn linear_with_and_without_bias() {
    gradcheck!("linear", inputs(24, &[&[5, 4], &[3, 4], &[3]], -1.0, 1.0), |v| v[0]
        .linear(&v[1], Some(&v[2])));
    gradcheck!("linear no bias", inputs(25, &[&[5, 4], &[3, 4]], -1.0, 1.0), |v| v[0].linear(&v[1], None));
    gradcheck!("linear on rank 3", inputs(26, &[&[2, 3, 4], &[5, 4], &[5]], -1.0, 1.0), |v| v[0]
        .linear(&v[1], Some(&v[2]))?
        .tanh());
    gradcheck!("linear of a transposed input", inputs(27, &[&[4, 5], &[3, 4], &[3]], -1.0, 1.0), |v| v[0]
        .transpose(0, 1)?
        .linear(&v[1], Some(&v[2])));
}

#[test]
fn losses() {
    gradcheck!("mse_loss", inputs(90, &[&[4, 3], &[4, 3]], -1.0, 1.0), |v| v[0].mse_loss(&v[1]));
    gradcheck!("mse_loss of a product", inputs(91, &[&[5, 2], &[2, 1], &[5, 1]], -1.0, 1.0), |v| v[0]
        .matmul(&v[1])?
        .mse_loss(&v[2]));
    gradcheck!("cross_entropy", inputs(92, &[&[5, 5]], -3.0, 3.0), |v| v[0]
        .cross_entropy(&ids(&[2, 0, 4, 4, 1])));
    gradcheck!("cross_entropy ignore_index", inputs(94, &[&[5, 5]], -3.0, 3.0), |v| v[0]
        .cross_entropy_ignore(&Tensor::new(&[2i64, -100, 4, -100, 1], &Device::Cpu)?, -100));
    gradcheck!("cross_entropy after linear", inputs(93, &[&[5, 3], &[5, 3], &[5]], -1.0, 1.0), |v| v[0]
        .linear(&v[1], Some(&v[2]))?
        .cross_entropy(&ids(&[2, 0, 4, 4, 1])));
}

#[test]
fn matmul_of_transposed_views_on_the_cpu_kernel() {
    // x·wᵀ with w a parameter: the gradient of w reaches it through the transpose.
    gradcheck!("x·wᵀ", inputs(28, &[&[6, 4], &[3, 4]], -1.0, 1.0), |v| v[0]
        .matmul(&v[1].transpose(0, 1)?));
    gradcheck!("aᵀ·bᵀ", inputs(29, &[&[4, 6], &[3, 4]], -1.0, 1.0), |v| v[0]
        .transpose(0, 1)?
        .matmul(&v[1].transpose(0, 1)?));
    gradcheck!("matrix·vector", inputs(30, &[&[7, 5], &[5, 1]], -1.0, 1.0), |v| v[0].matmul(&v[1]));
}

#[test]
fn fused_activations() {
    gradcheck!("conv2d + bias + relu", inputs(56, &[&[2, 3, 5, 6], &[4, 3, 3, 3], &[4]], -1.0, 1.0), |v| v
        [0]
    .conv2d_bias_relu(&v[1], &v[2], 1, 1));
    gradcheck!("conv2d + relu stride 2", inputs(57, &[&[2, 2, 7, 7], &[3, 2, 3, 3], &[3]], -1.0, 1.0), |v| v
        [0]
    .conv2d_bias_relu(&v[1], &v[2], 2, 1));
    gradcheck!("linear + relu", inputs(31, &[&[6, 4], &[5, 4], &[5]], -1.0, 1.0), |v| v[0]
        .linear_relu(&v[1], &v[2]));
}

#[test]
fn reductions() {
    let xs = inputs(30, &[&[3, 4, 5]], -1.0, 1.0);
    gradcheck!("sum_all", xs, |v| v[0].sum_all());
    gradcheck!("sum dims", xs, |v| v[0].sum(&[0, 2]));
    gradcheck!("sum_keepdim", xs, |v| v[0].sum_keepdim(&[1]));
    gradcheck!("mean_all", xs, |v| v[0].mean_all());
    gradcheck!("mean dim", xs, |v| v[0].mean(&[1]));
    gradcheck!("max", xs, |v| v[0].max(1));
    gradcheck!("max_keepdim", xs, |v| v[0].max_keepdim(2));
}

#[test]
fn shape_ops() {
    let xs = inputs(40, &[&[2, 3, 4]], -1.0, 1.0);
    gradcheck!("reshape", xs, |v| v[0].reshape(&[6, 4])?.sqr());
    gradcheck!("transpose", xs, |v| v[0].transpose(0, 2)?.sqr());
    gradcheck!("narrow", xs, |v| v[0].narrow(1, 1, 2)?.sqr());
    gradcheck!("broadcast_as", inputs(41, &[&[3, 1]], -1.0, 1.0), |v| v[0].broadcast_as(&[2, 3, 4])?.sqr());
    gradcheck!("cat", inputs(42, &[&[2, 3], &[2, 2], &[2, 1]], -1.0, 1.0), |v| T::cat(
        &[&v[0], &v[1], &v[2]],
        1
    )?
    .sqr());
    gradcheck!("index_select with repeats", inputs(43, &[&[4, 3]], -1.0, 1.0), |v| v[0]
        .index_select(&ids(&[2, 0, 2, 3]), 0)?
        .sqr());
    gradcheck!("index_select dim 1", inputs(44, &[&[2, 4]], -1.0, 1.0), |v| v[0]
        .index_select(&ids(&[3, 1]), 1));
    gradcheck!("gather", inputs(45, &[&[3, 4]], -1.0, 1.0), |v| v[0]
        .gather(&Tensor::new(&[[1u32, 1], [0, 3], [2, 0]], &Device::Cpu)?, 1)?
        .sqr());
}

#[test]
fn softmax_family() {
    let xs = inputs(50, &[&[3, 5]], -3.0, 3.0);
    gradcheck!("softmax last dim", xs, |v| v[0].softmax(1));
    gradcheck!("softmax dim 0", xs, |v| v[0].softmax(0));
    gradcheck!("log_softmax", xs, |v| v[0].log_softmax(1));
    gradcheck!("log_softmax dim 0", xs, |v| v[0].log_softmax(0));
}

#[test]
fn convolution() {
    gradcheck!("conv2d pad 1", inputs(60, &[&[2, 3, 6, 5], &[4, 3, 3, 3]], -1.0, 1.0), |v| v[0]
        .conv2d(&v[1], 1, 1));
    // Stride 1 takes the flipped-kernel convolution path for the input gradient: padding 0..k-1.
    gradcheck!("conv2d stride 1 pad 0", inputs(65, &[&[2, 3, 6, 5], &[2, 3, 3, 3]], -1.0, 1.0), |v| v[0]
        .conv2d(&v[1], 1, 0));
    gradcheck!("conv2d stride 1 pad 2", inputs(66, &[&[1, 2, 5, 6], &[3, 2, 3, 3]], -1.0, 1.0), |v| v[0]
        .conv2d(&v[1], 1, 2));
    gradcheck!("conv2d stride 1 5x5 pad 1", inputs(67, &[&[1, 2, 7, 7], &[2, 2, 5, 5]], -1.0, 1.0), |v| v[0]
        .conv2d(&v[1], 1, 1));
    gradcheck!("conv2d stride 2", inputs(61, &[&[2, 2, 7, 7], &[3, 2, 3, 3]], -1.0, 1.0), |v| v[0]
        .conv2d(&v[1], 2, 0));
    // Rows dropped by the stride differ between the axes here, which candle 0.11's own conv2d
    // backward cannot handle (it fails with a shape mismatch): finite differences only.
    gradcheck!(
        "conv2d stride 2 ragged",
        inputs(64, &[&[2, 2, 7, 6], &[3, 2, 3, 3]], -1.0, 1.0),
        fd_only | v | v[0].conv2d(&v[1], 2, 0)
    );
    gradcheck!("conv2d stride 2 pad 1", inputs(62, &[&[1, 2, 8, 8], &[2, 2, 3, 3]], -1.0, 1.0), |v| v[0]
        .conv2d(&v[1], 2, 1));
    gradcheck!("conv2d with bias", inputs(68, &[&[2, 3, 5, 6], &[4, 3, 3, 3], &[4]], -1.0, 1.0), |v| v[0]
        .conv2d_bias(&v[1], &v[2], 1, 1));
    gradcheck!("conv2d 1x1 with bias", inputs(69, &[&[2, 3, 4, 4], &[5, 3, 1, 1], &[5]], -1.0, 1.0), |v| v
        [0]
    .conv2d_bias(&v[1], &v[2], 1, 0)?
    .relu());
    gradcheck!(
        "conv2d stride 3 pad 2 with bias",
        inputs(58, &[&[3, 2, 8, 7], &[3, 2, 4, 4], &[3]], -1.0, 1.0),
        fd_only | v | v[0].conv2d_bias(&v[1], &v[2], 3, 2)
    );
    // Max pooling inside: candle's max-pool backward is no oracle (see `pooling`).
    gradcheck!(
        "conv-relu-pool chain",
        inputs(59, &[&[2, 2, 6, 6], &[3, 2, 3, 3], &[3]], -1.0, 1.0),
        fd_only | v | v[0].conv2d_bias(&v[1], &v[2], 1, 1)?.relu()?.max_pool2d(2, 2)?.tanh()
    );
    gradcheck!(
        "conv2d non-square kernel",
        inputs(63, &[&[1, 2, 6, 7], &[2, 2, 3, 2]], -1.0, 1.0),
        fd_only | v | v[0].conv2d(&v[1], 3, 1)
    );
}

#[test]
fn pooling() {
    let xs = inputs(70, &[&[2, 3, 6, 6]], -1.0, 1.0);
    // candle 0.11.1's max-pool backward scales the gradient by 1/k² (it multiplies by the window
    // mean of the argmax mask instead of dividing by the count of maxima), so it is no oracle
    // here: finite differences only.
    gradcheck!("max_pool2d 2x2", xs, fd_only | v | v[0].max_pool2d(2, 2));
    gradcheck!("avg_pool2d 2x2", xs, |v| v[0].avg_pool2d(2, 2));
    // Overlapping and ragged windows: candle's backprop cannot do these; finite differences can.
    let ys = inputs(71, &[&[1, 2, 7, 5]], -1.0, 1.0);
    gradcheck!("max_pool2d 3 stride 2", ys, fd_only | v | v[0].max_pool2d(3, 2));
    gradcheck!("avg_pool2d 3 stride 1", ys, fd_only | v | v[0].avg_pool2d(3, 1));
}

#[test]
fn composite_uses_accumulate() {
    let xs = inputs(80, &[&[3, 4], &[4]], -1.0, 1.0);
    // x used three times, y twice: gradients must accumulate.
    gradcheck!("x*x + x*y + y", xs, |v| v[0].mul(&v[0])?.add(&v[0].mul(&v[1])?)?.add(&v[1])?.tanh());
    gradcheck!("mlp-like", inputs(81, &[&[5, 3], &[3, 4], &[4]], -1.0, 1.0), |v| v[0]
        .matmul(&v[1])?
        .add(&v[2])?
        .relu()?
        .log_softmax(1));
}

/// Taper's ops compute the same values as candle's conv2d and pooling on the CPU (f32 and f64,
/// with and without bias, every stride and padding the tests use), on every device and path.
fn forward_values_match_candle(device: &Device) -> anyhow::Result<()> {
    use candle_core::DType;
    use taper_autograd::{with_kernels, Kernels, Var};
    for kernels in [Kernels::Native, Kernels::Generic] {
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            for (seed, xd, kd, stride, pad) in [
                (1u64, [2usize, 3, 7, 6], [4usize, 3, 3, 3], 1usize, 1usize),
                (2, [3, 1, 28, 28], [8, 1, 3, 3], 1, 1),
                (3, [2, 2, 9, 8], [3, 2, 3, 3], 2, 0),
                (4, [1, 4, 6, 6], [2, 4, 1, 1], 1, 0),
                (5, [2, 2, 8, 8], [2, 2, 5, 5], 3, 2),
            ] {
                let t = inputs(seed, &[&xd, &kd, &[kd[0]]], -1.0, 1.0);
                let (x, k, b) = (t[0].to_dtype(dtype)?, t[1].to_dtype(dtype)?, t[2].to_dtype(dtype)?);
                let on = |t: &Tensor| Var::constant(t.to_device(device).unwrap());
                let ours =
                    with_kernels(kernels, || on(&x).conv2d_with_bias(&on(&k), Some(&on(&b)), stride, pad))?;
                let theirs = x.conv2d(&k, pad, stride, 1, 1)?.broadcast_add(&b.reshape((1, kd[0], 1, 1))?)?;
                let e = common::rel_err(&ours.value().to_device(&Device::Cpu)?, &theirs);
                assert!(e < tol, "conv2d {xd:?} {kd:?} s{stride} p{pad} {dtype:?} {kernels:?}: {e:e}");
                for (k, s) in [(2, 2), (3, 2), (2, 1)] {
                    let ours = with_kernels(kernels, || on(&x).max_pool2d(k, s))?;
                    let theirs = x.max_pool2d_with_stride(k, s)?;
                    let e = common::rel_err(&ours.value().to_device(&Device::Cpu)?, &theirs);
                    assert_eq!(e, 0.0, "max_pool2d {k} {s} {kernels:?}");
                }
            }
        }
    }
    Ok(())
}
taper_tensor::test_device!(forward_values_match_candle);
