//! A small run on a busy machine: 400 full-batch Adam steps of an MLP 2-64-64-3 on 300 spiral
//! points (the size of a first experiment), timed with the default threads and with one thread,
//! first on an idle machine, then while other processes keep every core busy (one spinning
//! process per core, at the same priority). Each run is its own process (the thread count is
//! fixed when a process starts); rounds alternate the two settings.
//!
//! Small work should stay on the calling thread, and the pool should not spin against the other
//! processes: with the cores busy, the default threads should be no more than 1.2× slower than one
//! thread.
//!
//! `cargo bench --bench busy_machine` (`-- ROUNDS`, default 5)

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use taper::nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper::optim::from_spec;
use taper::{DType, Device, Tape, Tensor, Var};

const STEPS: usize = 400;
const POINTS: usize = 300;

/// The spiral data set of CS231n: three arms of 100 points each, with a little noise.
fn spiral() -> taper::Result<(Tensor, Tensor)> {
    let per = POINTS / 3;
    let (mut xs, mut ys) = (Vec::with_capacity(POINTS * 2), Vec::with_capacity(POINTS));
    let mut noise = 0x9e37_79b9_u32;
    for class in 0..3u32 {
        for i in 0..per {
            noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let r = i as f32 / per as f32;
            let t = class as f32 * 4.0 + r * 4.0 + (noise >> 8) as f32 / (1u32 << 24) as f32 * 0.2;
            xs.extend([r * t.sin(), r * t.cos()]);
            ys.push(class);
        }
    }
    Ok((Tensor::from_vec(xs, (POINTS, 2), &Device::Cpu)?, Tensor::new(ys.as_slice(), &Device::Cpu)?))
}

/// One run: the seconds its steps took, and the final loss.
fn run() -> taper::Result<(f64, f64)> {
    let (x, y) = spiral()?;
    let b = Builder::new(0, DType::F32, &Device::Cpu);
    let model = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 2, 64)?)
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 64, 64)?)
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc3"), 64, 3)?);
    let params = b.into_store();
    let mut opt = from_spec("adam:lr=0.01", params.trainable())?;
    let x = Var::constant(x);
    let start = Instant::now();
    let mut loss = f64::NAN;
    for _ in 0..STEPS {
        let tape = Tape::new();
        let l = cross_entropy(&model.forward(&tape, &x)?, &y)?;
        opt.step(&l.backward()?)?;
        loss = l.to_scalar_f64()?;
    }
    Ok((start.elapsed().as_secs_f64(), loss))
}

/// Runs this program again as one timed run, with `threads` threads (the default when `None`).
fn timed(threads: Option<usize>) -> anyhow::Result<f64> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--run");
    match threads {
        Some(n) => cmd.env("RAYON_NUM_THREADS", n.to_string()),
        None => cmd.env_remove("RAYON_NUM_THREADS"),
    };
    let out = cmd.output()?;
    anyhow::ensure!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    Ok(text.split_whitespace().next().ok_or_else(|| anyhow::anyhow!("no time in `{text}`"))?.parse()?)
}

/// Processes that keep every core busy until dropped.
struct Burners(Vec<Child>);

impl Burners {
    fn start(n: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let children = (0..n)
            .map(|_| Command::new(&exe).arg("--burn").stdout(Stdio::null()).spawn())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(children))
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--burn") {
        let mut x = 1u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    if args.iter().any(|a| a == "--run") {
        let (seconds, loss) = run().map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{seconds} {loss}");
        return Ok(());
    }
    // `cargo bench` passes `--bench`; a number is the rounds.
    let rounds: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("busy_machine: {STEPS} Adam steps of an MLP 2-64-64-3 on {POINTS} points; {cores} cores; {rounds} rounds");
    for busy in [false, true] {
        let _burners = if busy { Some(Burners::start(cores)?) } else { None };
        let (mut default, mut one) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            default.push(timed(None)?);
            one.push(timed(Some(1))?);
        }
        let fmt = |v: &[f64]| v.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(" ");
        let (d, o) = (median(default.clone()), median(one.clone()));
        let state = if busy { format!("busy ({cores} spinning processes)") } else { "idle".into() };
        println!(
            "{state:>32}: default threads {d:.3} s [{}], 1 thread {o:.3} s [{}]: {:.2}x",
            fmt(&default),
            fmt(&one),
            d / o
        );
    }
    Ok(())
}
