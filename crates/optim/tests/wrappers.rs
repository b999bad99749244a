//! Lookahead and SAM around other optimizers: specs in and out, bad specs as one clear line,
//! and a failed SAM step that changes nothing.

use candle_core::{Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_optim::{canonical, from_spec, Error, Lookahead, Optimizer, Sam};

fn store() -> ParamStore {
    let mut s = ParamStore::new();
    s.insert("x", Tensor::new(&[[1.0f64, -2.0], [0.5, 3.0]], &Device::Cpu).unwrap()).unwrap();
    s
}

fn loss(tape: &Tape, s: &ParamStore) -> Var {
    let x = tape.param(s.get("x").unwrap());
    let w = Var::constant(Tensor::new(&[[0.1f64, 2.0], [1.0, 0.5]], &Device::Cpu).unwrap());
    x.sqr().unwrap().mul(&w).unwrap().sum_all().unwrap()
}

fn values(s: &ParamStore) -> Vec<f64> {
    s.params()[0].value().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn specs_round_trip_with_the_inner_optimizer_nested() {
    let spec = canonical("lookahead:k=6,alpha=0.5,optimizer=adam(lr=0.3)").unwrap().to_string();
    assert!(spec.starts_with("lookahead:alpha=0.5,k=6,optimizer=adam(lr=0.3,"), "{spec}");
    assert_eq!(canonical(&spec).unwrap().to_string(), spec);
    let sam =
        canonical("sam:rho=0.05,adaptive=false,optimizer=sgd(lr=0.1,momentum=0.9)").unwrap().to_string();
    assert!(
        sam.starts_with("sam:rho=0.05,adaptive=false,perturb_eps=1e-12,optimizer=sgd(lr=0.1,momentum=0.9"),
        "{sam}"
    );
    let s = store();
    let opt = from_spec(&spec, s.trainable()).unwrap();
    assert!(opt.as_any().downcast_ref::<Lookahead>().is_some());
    assert_eq!(opt.name(), "lookahead");
    // Options reach the inner optimizer (lr, betas) or the wrapper (alpha, k, rho).
    assert_eq!(opt.group_option(0, "lr"), Some(0.3));
    assert_eq!(opt.group_option(0, "lookahead_alpha"), Some(0.5));
    let mut sam = from_spec("sam:optimizer=adadelta", s.trainable()).unwrap();
    assert!(sam.as_any().downcast_ref::<Sam>().is_some());
    // Adadelta has a `rho` of its own: the inner optimizer's comes first.
    assert_eq!(sam.group_option(0, "rho"), Some(0.9));
    sam.set_group_option(0, "perturb_eps", 1e-10).unwrap();
    assert_eq!(sam.group_option(0, "perturb_eps"), Some(1e-10));
    assert!(sam.set_group_option(0, "perturb_eps", -1.0).is_err());
}

#[test]
fn bad_specs_are_one_clear_line() {
    let cases = [
        ("lookahead:k=6", "wraps an optimizer"),
        ("sam:rho=0.05", "optimizer=adam(lr=0.3)"),
        ("sam:optimizer=lbfgs", "cannot wrap `lbfgs`"),
        ("sam:optimizer=sam(optimizer=sgd)", "cannot wrap `sam`"),
        ("lookahead:optimizer=lookahead(optimizer=sgd)", "cannot wrap `lookahead`"),
        ("lookahead:k=0,optimizer=sgd", "k=0"),
        ("lookahead:alpha=2,optimizer=sgd", "alpha=2"),
        ("sam:rho=-1,optimizer=sgd", "rho=-1"),
        ("lookahead:optimizer=adam(lr=0.3", "unclosed"),
        ("lookahead:optimizer=nosuch(lr=1)", "nosuch"),
        ("sgd:lr=0.1,cautious=true", "momentum"),
        ("lookahead:optimizer=sgd(lr=0.1,cautious=true)", "momentum"),
    ];
    for (spec, says) in cases {
        let err = canonical(spec).unwrap_err().to_string();
        assert!(err.contains(says) && !err.contains('\n'), "{spec}: {err}");
    }
}

#[test]
fn sam_needs_a_closure_and_a_failed_second_evaluation_changes_nothing() {
    let s = store();
    let mut opt = from_spec("sam:rho=0.1,optimizer=adam(lr=0.1)", s.trainable()).unwrap();
    let grads = loss(&Tape::new(), &s).backward().unwrap();
    assert!(opt.step(&grads).unwrap_err().to_string().contains("closure"));
    opt.step_closure(&mut || {
        let tape = Tape::new();
        let l = loss(&tape, &s);
        Ok((l.to_scalar_f64()?, l.backward()?))
    })
    .unwrap();
    let before = (values(&s), format!("{:?}", opt.export_state().unwrap().tensors));
    let mut calls = 0;
    let err = opt
        .step_closure(&mut || {
            calls += 1;
            if calls == 2 {
                return Err(Error::InvalidArgument("the second evaluation failed".into()));
            }
            let tape = Tape::new();
            let l = loss(&tape, &s);
            Ok((l.to_scalar_f64()?, l.backward()?))
        })
        .unwrap_err();
    assert!(err.to_string().contains("second evaluation"));
    assert_eq!((values(&s), format!("{:?}", opt.export_state().unwrap().tensors)), before);
}

#[test]
fn lookahead_syncs_every_k_steps() {
    // k steps of Lookahead are k steps of its inner optimizer (the first sync moves nothing,
    // as timm's); the next k differ.
    let (a, b) = (store(), store());
    let mut la = from_spec("lookahead:k=2,alpha=0.5,optimizer=sgd(lr=0.1)", a.trainable()).unwrap();
    let mut sgd = from_spec("sgd:lr=0.1", b.trainable()).unwrap();
    for step in 1..=4 {
        la.step(&loss(&Tape::new(), &a).backward().unwrap()).unwrap();
        sgd.step(&loss(&Tape::new(), &b).backward().unwrap()).unwrap();
        assert_eq!(values(&a) == values(&b), step <= 3, "step {step}");
    }
    let slow = la.buffer(&a.params()[0], "lookahead_slow_buff").unwrap().unwrap();
    assert_eq!(slow.flatten_all().unwrap().to_vec1::<f64>().unwrap(), values(&a));
}

#[test]
fn learning_rate_free_optimizers_resume_exactly_and_refuse_bad_input() {
    for spec in ["prodigy:lr=1,d0=1e-3,slice_p=3", "dadapt_adam:lr=1,d0=1e-3,decouple=true,weight_decay=0.01"]
    {
        let (a, b) = (store(), store());
        let mut straight = from_spec(spec, a.trainable()).unwrap();
        let mut first = from_spec(spec, b.trainable()).unwrap();
        for _ in 0..3 {
            straight.step(&loss(&Tape::new(), &a).backward().unwrap()).unwrap();
            first.step(&loss(&Tape::new(), &b).backward().unwrap()).unwrap();
        }
        let saved = first.export_state().unwrap();
        assert!(saved.scalars.keys().any(|k| k.ends_with(".d")), "{spec}: {:?}", saved.scalars);
        let mut resumed = from_spec(spec, b.trainable()).unwrap();
        resumed.import_state(&saved).unwrap();
        for _ in 0..3 {
            straight.step(&loss(&Tape::new(), &a).backward().unwrap()).unwrap();
            resumed.step(&loss(&Tape::new(), &b).backward().unwrap()).unwrap();
        }
        assert_eq!(values(&a), values(&b), "{spec}");
        assert!(straight.group_option(0, "d").unwrap() > 1e-3, "{spec}: d grew");
        // A non-finite gradient changes nothing.
        let before = (values(&a), format!("{:?}", straight.export_state().unwrap().scalars));
        let mut g = loss(&Tape::new(), &a).backward().unwrap();
        g.set(&a.params()[0], Tensor::new(&[[f64::NAN, 0.0], [0.0, 0.0]], &Device::Cpu).unwrap());
        assert!(straight.step(&g).is_err());
        assert_eq!((values(&a), format!("{:?}", straight.export_state().unwrap().scalars)), before);
    }
    assert!(canonical("prodigy:d0=0").unwrap_err().to_string().contains("d0=0"));
    assert!(canonical("prodigy:lr=1,cautious=true").is_err());
    assert_eq!(
        canonical("prodigy").unwrap().to_string(),
        "prodigy:lr=1,beta1=0.9,beta2=0.999,eps=1e-8,weight_decay=0,decouple=true,use_bias_correction=false,\
         safeguard_warmup=false,d0=1e-6,d_coef=1,slice_p=1"
    );
}

#[test]
fn soap_resumes_exactly_across_a_refresh_of_its_bases() {
    let spec = "soap:lr=0.05,precondition_frequency=2,weight_decay=0.01";
    let (a, b) = (store(), store());
    let mut straight = from_spec(spec, a.trainable()).unwrap();
    let mut first = from_spec(spec, b.trainable()).unwrap();
    for _ in 0..4 {
        straight.step(&loss(&Tape::new(), &a).backward().unwrap()).unwrap();
        first.step(&loss(&Tape::new(), &b).backward().unwrap()).unwrap();
    }
    let saved = first.export_state().unwrap();
    let names: Vec<&str> = saved.tensors.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["x.exp_avg", "x.exp_avg_sq", "x.GG0", "x.GG1", "x.Q0", "x.Q1"]);
    let mut resumed = from_spec(spec, b.trainable()).unwrap();
    resumed.import_state(&saved).unwrap();
    for _ in 0..4 {
        straight.step(&loss(&Tape::new(), &a).backward().unwrap()).unwrap();
        resumed.step(&loss(&Tape::new(), &b).backward().unwrap()).unwrap();
    }
    assert_eq!(values(&a), values(&b));
    // The first step only starts the preconditioners: the parameters stay put.
    let c = store();
    let mut soap = from_spec(spec, c.trainable()).unwrap();
    soap.step(&loss(&Tape::new(), &c).backward().unwrap()).unwrap();
    assert_eq!(values(&c), values(&store()));
    let q = soap.buffer(&c.params()[0], "Q0").unwrap().unwrap();
    let qtq = q.t().unwrap().matmul(&q).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert!((qtq[0] - 1.0).abs() < 1e-12 && qtq[1].abs() < 1e-12 && (qtq[3] - 1.0).abs() < 1e-12, "{qtq:?}");
    let err = canonical("soap:precondition_frequency=0").unwrap_err().to_string();
    assert!(err.contains("precondition_frequency=0"), "{err}");
}
