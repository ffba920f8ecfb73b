//! The numbers behind softnet's pictures, on models trained briefly with the library:
//! calibration bins, weight-image fooling, FGSM, picture sizes and the HTML report. Synthetic
//! data always; real MNIST (a 300-step softmax regression) where it is found.

use softnet::analysis::inspect::{
    self, calibration_at, evaluate_with_logits, fgsm_sweep, to_unit, weight_fool,
    weight_fooling_sweep, InspectError,
};
use softnet::data::{BatchOrder, Dataset, Mnist, PIXELS};
use softnet::nn::{Architecture, Model};
use softnet::optim::{Optimizer, OptimizerKind};
use softnet::render::digits::DigitsGrid;
use softnet::render::pictures::{
    changed_digits_picture, digits_picture, model_report, weights_picture, ReportOptions,
};
use softnet::render::weights::weights_grid_size;
use softnet::train::Trainer;

use crate::common::{real_mnist, synthetic};

fn train(model: Model, data: &Dataset, steps: usize, lr: f32) -> Model {
    let optimizer = Optimizer::new(OptimizerKind::Sgd, lr, model.params().len());
    let mut t = Trainer::new(
        model,
        optimizer,
        data.len(),
        100,
        BatchOrder::Shuffle { seed: 3 },
        Some(1),
    );
    for _ in 0..steps {
        t.step(data);
    }
    t.into_model()
}

/// Softmax regression trained 100 steps on the synthetic bands, and its test set.
fn softmax_on_synthetic() -> (Model, Dataset) {
    let model = train(Model::softmax_regression(), &synthetic(2000, 1), 100, 0.1);
    (model, synthetic(600, 2))
}

fn mlp_on_synthetic() -> (Model, Dataset) {
    let arch = Architecture::mlp(&[32]);
    let model = train(Model::he_normal(arch, 4), &synthetic(2000, 1), 100, 0.05);
    (model, synthetic(600, 2))
}

#[test]
fn calibration_bins_hold_every_test_digit() {
    for (model, test) in [softmax_on_synthetic(), mlp_on_synthetic()] {
        let ev = evaluate_with_logits(&model, &test).unwrap();
        assert!(
            ev.result.accuracy > 0.95,
            "{}: accuracy {}",
            model.architecture().describe(),
            ev.result.accuracy
        );
        for t in [1.0, 0.5, 3.0] {
            let cal = calibration_at(&ev.logits, test.labels(), 10, t).unwrap();
            assert_eq!(cal.bins.len(), 10);
            assert_eq!(cal.bins.iter().map(|b| b.count).sum::<usize>(), test.len());
            assert_eq!(
                cal.bins.iter().map(|b| b.correct).sum::<usize>(),
                ev.result.correct
            );
            assert_eq!(
                cal.confidences_correct.len() + cal.confidences_wrong.len(),
                test.len()
            );
            assert!((0.0..=1.0).contains(&cal.ece), "ece {}", cal.ece);
            // The temperature never changes the prediction, only the confidence.
            assert!((f64::from(cal.accuracy) - ev.result.accuracy).abs() < 1e-6);
        }
        assert_eq!(
            ev.confusion_flat().iter().sum::<u64>(),
            test.len() as u64,
            "confusion counts"
        );
    }
}

#[test]
fn a_fitted_temperature_does_not_raise_the_held_out_nll() {
    let (model, test) = softmax_on_synthetic();
    // The bands are separable, so on clean labels the NLL falls as T -> 0; one label in ten
    // made wrong puts the minimum inside the range.
    let clean = inspect::tail(&synthetic(2000, 1), 500);
    let labels: Vec<u8> = clean
        .labels()
        .iter()
        .enumerate()
        .map(|(i, &l)| if i % 10 == 0 { (l + 1) % 10 } else { l })
        .collect();
    let held = Dataset::new(clean.pixels().to_vec(), labels);
    let t = inspect::fit_model_temperature(&model, &held).unwrap();
    assert!(t > 0.06 && t < 19.0, "t {t}");
    let ev = evaluate_with_logits(&model, &held).unwrap();
    let nll = |t: f32| {
        softnet::analysis::calibration::nll_with_temperature(&ev.logits, held.labels(), 10, t)
            .unwrap()
    };
    assert!(
        nll(t) <= nll(1.0) + 1e-9,
        "nll at t {t}: {} vs {}",
        nll(t),
        nll(1.0)
    );
    // And it is a minimum: nudging it either way does not help.
    assert!(nll(t) <= nll(t * 1.05) + 1e-9 && nll(t) <= nll(t / 1.05) + 1e-9);
    assert!(evaluate_with_logits(&model, &test).is_ok());
}

#[test]
fn fooling_rate_rises_with_the_scale_of_the_weight_image() {
    let (model, test) = softmax_on_synthetic();
    let scales = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
    let sweep = weight_fooling_sweep(&model, &test, 7, &scales).unwrap();
    let rates: Vec<f32> = sweep.iter().map(|p| p.1).collect();
    assert_eq!(sweep.iter().map(|p| p.0).collect::<Vec<_>>(), scales);
    assert!(rates[0] < 0.02, "{rates:?}");
    assert!(rates.windows(2).all(|r| r[1] >= r[0]), "{rates:?}");
    assert!(rates[7] > 0.9, "{rates:?}");

    // The 25 digits shown: scale 0 predicts as the plain model does.
    let shown = to_unit(&test.pixels()[..25 * PIXELS]);
    let plain = weight_fool(&model, &shown, 7, 0.0).unwrap();
    assert_eq!(plain.images, shown);
    let ev = evaluate_with_logits(&model, &test.head(25)).unwrap();
    let correct = plain
        .predictions
        .iter()
        .zip(test.labels())
        .filter(|(p, l)| p == l)
        .count();
    assert_eq!(correct, ev.result.correct);
    let big = weight_fool(&model, &shown, 7, 16.0).unwrap();
    assert!(big.predictions.iter().filter(|&&p| p == 7).count() >= 23);
}

#[test]
fn the_weight_image_attack_is_refused_for_an_mlp() {
    let (model, test) = mlp_on_synthetic();
    let err = weight_fooling_sweep(&model, &test, 7, &[1.0]).unwrap_err();
    assert!(matches!(err, InspectError::NotSoftmaxRegression { .. }));
    assert!(err.to_string().contains("--method fgsm"), "{err}");
}

#[test]
fn fgsm_with_eps_zero_changes_nothing_and_more_eps_fools_more() {
    for (model, test) in [softmax_on_synthetic(), mlp_on_synthetic()] {
        let x = to_unit(test.pixels());
        let (out, adv) = fgsm_sweep(&model, &x, test.labels(), &[0.0]).unwrap();
        assert_eq!(adv, x, "eps 0 moved pixels");
        let before = evaluate_with_logits(&model, &test).unwrap().result.accuracy as f32;
        assert!((out[0].accuracy_before - before).abs() < 1e-6);
        assert_eq!(out[0].accuracy_after, out[0].accuracy_before);
        assert_eq!(out[0].success_rate, 0.0);
        assert_eq!((out[0].mean_linf, out[0].mean_l2), (0.0, 0.0));

        let eps = [0.05, 0.1, 0.2, 0.4];
        let (out, adv) = fgsm_sweep(&model, &x, test.labels(), &eps).unwrap();
        let rates: Vec<f32> = out.iter().map(|o| o.success_rate).collect();
        assert!(rates.windows(2).all(|r| r[1] >= r[0]), "{rates:?}");
        assert!(
            rates[3] > 0.5,
            "{}: {rates:?}",
            model.architecture().describe()
        );
        // The change is at most eps per pixel and the result stays an image.
        assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
        let last = &out[3];
        assert!(
            last.mean_linf <= 0.4 + 1e-6 && last.mean_linf > 0.3,
            "{last:?}"
        );
        assert!(last.mean_l2 <= 0.4 * (PIXELS as f32).sqrt());
    }
}

#[test]
fn pictures_have_the_grid_sizes() {
    let (model, test) = softmax_on_synthetic();
    let digits = digits_picture(&test, 25, Some("t")).unwrap();
    let want = DigitsGrid::new(5).title("t").size(25);
    assert_eq!((digits.width, digits.height), want);
    assert_eq!(want, (660, 810));
    let untitled = digits_picture(&test, 10, None).unwrap();
    assert_eq!(
        (untitled.width, untitled.height),
        DigitsGrid::new(4).size(10)
    );

    let w = weights_picture(&model, 16).unwrap();
    assert_eq!((w.width, w.height), weights_grid_size(10, 28, 5, true));
    let (mlp, _) = mlp_on_synthetic();
    let w = weights_picture(&mlp, 6).unwrap();
    assert_eq!((w.width, w.height), weights_grid_size(6, 28, 4, true));
    // More units than the layer has: all 32 of them.
    let w = weights_picture(&mlp, 100).unwrap();
    assert_eq!((w.width, w.height), weights_grid_size(32, 28, 6, true));

    let x = to_unit(&test.pixels()[..9 * PIXELS]);
    let preds = vec![7u8; 9];
    let pic = changed_digits_picture(&x, &test.labels()[..9], &preds, "t", |l, p| l != p).unwrap();
    assert_eq!(
        (pic.width, pic.height),
        DigitsGrid::new(3).title("t").size(9)
    );
}

#[test]
fn the_report_shows_the_numbers_and_every_picture() {
    let (model, test) = softmax_on_synthetic();
    let mnist = Mnist {
        train: synthetic(1000, 1),
        test,
    };
    let opts = ReportOptions {
        metadata: vec![("model file: training".into(), "{\"steps\":100}".into())],
        temperature_fit: 300,
        ..ReportOptions::default()
    };
    let (report, n) = model_report(&model, &mnist, &opts).unwrap();
    let html = report.to_html();
    let accuracy = format!("{:.2}%", n.accuracy * 100.0);
    assert!(html.contains(&accuracy), "{accuracy}");
    assert!(html.contains(&format!("{:.4}", n.calibration.ece)));
    assert!(html.contains("784-10"));
    assert!(html.contains("{&quot;steps&quot;:100}"));
    // digits, weights, weight-fooled digits, fooling plot, FGSM digits, FGSM plot,
    // calibration before and after the temperature, mistakes.
    let images = html.matches("<img src=\"data:image/png;base64,").count();
    let mistakes = usize::from(!n.mistakes.is_empty());
    assert_eq!(images, 8 + mistakes);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert_eq!(n.weight_sweep.as_ref().map(Vec::len), Some(5));
    assert_eq!(n.fgsm_chosen().eps, 0.1);
    assert!(n.tempered.is_some());

    // An MLP: no weight-image attack, one picture fewer per attack.
    let (mlp, test) = mlp_on_synthetic();
    let mnist = Mnist {
        train: synthetic(1000, 1),
        test,
    };
    let (report, n) = model_report(&mlp, &mnist, &opts).unwrap();
    assert!(n.weight_sweep.is_none());
    let html = report.to_html();
    assert!(html.contains("784-32-10"));
    let images = html.matches("<img src=\"data:image/png;base64,").count();
    assert_eq!(images, 6 + usize::from(!n.mistakes.is_empty()));
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn real_mnist_softmax_after_300_steps() {
    let mnist = real_mnist();
    let model = train(Model::softmax_regression(), &mnist.train, 300, 0.1);
    let ev = evaluate_with_logits(&model, &mnist.test).unwrap();
    assert!(ev.result.accuracy > 0.87, "accuracy {}", ev.result.accuracy);
    let cal = calibration_at(&ev.logits, mnist.test.labels(), 10, 1.0).unwrap();
    assert_eq!(cal.bins.iter().map(|b| b.count).sum::<usize>(), 10_000);
    assert!(cal.ece < 0.15, "ece {}", cal.ece);
    // Temperature scaling fitted on training digits helps on the test set.
    let t = inspect::fit_model_temperature(&model, &inspect::tail(&mnist.train, 5000)).unwrap();
    let after = calibration_at(&ev.logits, mnist.test.labels(), 10, t).unwrap();
    assert!(
        after.ece < cal.ece,
        "ece {} -> {} at t {t}",
        cal.ece,
        after.ece
    );

    let sweep = weight_fooling_sweep(&model, &mnist.test, 7, &[0.25, 1.0, 4.0]).unwrap();
    assert!(
        sweep[0].1 < sweep[1].1 && sweep[1].1 < sweep[2].1,
        "{sweep:?}"
    );
    assert!(sweep[2].1 > 0.9, "{sweep:?}");

    let x = to_unit(mnist.test.pixels());
    let (out, _) = fgsm_sweep(&model, &x, mnist.test.labels(), &[0.0, 0.1, 0.2]).unwrap();
    assert_eq!(out[0].success_rate, 0.0);
    assert!(out[1].success_rate > 0.2, "{:?}", out[1].success_rate);
    assert!(out[2].success_rate > out[1].success_rate);
    assert!(
        (out[1].mean_linf - 0.1).abs() < 1e-3,
        "{}",
        out[1].mean_linf
    );
}
