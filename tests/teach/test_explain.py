"""The teaching views' numbers, checked against the masks and evaluations they come from: receptive fields,
pixel survival, OBD against magnitude (the same masks the methods prune with), the diagram and the confusion
matrix. A small real network trained on real MNIST."""

import numpy as np
import pytest
from cached_default import cached_default_net

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.core.pruning import report
from obd.methods.registry import calibration, plan
from obd.methods.saliency import hessian_diagonal
from obd.runtime.evaluate import evaluate
from obd.teach import explain


@pytest.fixture(scope="module")
def calib(mnist):
    return calibration(mnist, 512)


@pytest.fixture(scope="module")
def hessian(small_net, calib):
    return hessian_diagonal(small_net, calib.x, calib.y)


@pytest.fixture(scope="module")
def dense_eval(small_net, mnist):
    return evaluate(small_net, mnist.x_test, mnist.y_test)


@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("pick", ["strongest", "spread"])
def test_receptive_fields_are_the_first_kernels_columns_under_the_mask(small_net, mode, pick):
    mask = plan(small_net, "magnitude", mode).prune(0.8).masks[0]
    f = explain.receptive_fields(small_net, mask, 12, pick)
    kernel = small_net.layers[0].kernel
    norms = np.linalg.norm(kernel, axis=0)
    assert len(f.units) == 12 and np.all(np.diff(norms[f.units]) <= 0)  # strongest first
    if pick == "strongest":
        assert set(f.units) == set(np.argsort(-norms)[:12])
    else:
        assert f.units[-1] == np.argmin(norms)  # the spread reaches the weakest unit
    for i, u in enumerate(f.units):
        assert np.array_equal(f.kept[i].ravel(), mask[:, u])
        assert np.array_equal(f.weights[i].ravel(), np.where(mask[:, u], kernel[:, u], 0))
        assert np.array_equal(f.dense_weights[i].ravel(), kernel[:, u])
        assert f.alive[i] == mask[:, u].any()
    if mode == "unit" and pick == "spread":
        assert not f.alive[-1] and f.alive[0]  # magnitude removes the weakest units, keeps the strongest


def test_weight_pruning_cuts_off_the_border_pixels_first(mnist):  # as Han et al. 2015 saw for LeNet-300-100
    net = cached_default_net(mnist)  # well trained: its centre weights grew while the border's stayed small
    mask = plan(net, "magnitude", "weight").prune(0.9).masks[0]
    survival = explain.pixel_survival(mask)
    assert survival.shape == (28, 28) and survival.sum() == mask.sum()
    assert np.array_equal(survival.ravel(), mask.sum(axis=1))
    lit = (mnist.x_train > 0).mean(axis=0)  # (784,) share of training images in which each pixel has ink
    survival = survival.ravel()
    assert (survival[lit == 0] == 0).all()  # pixels never lit (the border) lose every connection
    assert survival[lit <= 0.001].mean() < survival[lit > 0.001].mean() / 3  # rarely lit ones most of them


def test_images_need_a_784_wide_first_layer(small_net):
    with pytest.raises(ValueError, match="does not match"):
        explain.receptive_fields(small_net, np.ones((784, 3), bool))
    with pytest.raises(ValueError, match="784, units"):
        explain.pixel_survival(np.ones((100, 3), bool))
    with pytest.raises(ValueError, match="pick must be"):
        explain.receptive_fields(small_net, np.ones((784, 128), bool), pick="best")


@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("budget", ["layer", "global"])
def test_obd_and_magnitude_keep_what_their_methods_prune_with(small_net, hessian, calib, mode, budget):
    k = 0.7
    c = explain.criteria(small_net, hessian, mode, budget)
    comp = explain.compare(c, k, layer=0, sample=300, seed=1)
    by_mag = plan(small_net, "magnitude", mode, budget).prune(k).masks[0]
    by_obd = plan(small_net, "obd", mode, budget, calib=calib).prune(k).masks[0]
    flat = (lambda m: m.ravel()) if mode == "weight" else (lambda m: m[0])
    assert np.array_equal(comp.kept_by_magnitude, flat(by_mag)[comp.index])
    assert np.array_equal(comp.kept_by_obd, flat(by_obd)[comp.index])
    layer = comp.layer_agreement
    assert layer.obd_only == int((flat(by_obd) & ~flat(by_mag)).sum())
    assert layer.magnitude_only == int((flat(by_mag) & ~flat(by_obd)).sum())
    assert layer.total == flat(by_mag).size
    assert comp.agreement.total == sum(
        m.size if mode == "weight" else m.shape[1] for m in plan(small_net, "magnitude", mode).prune(0).masks[:-1]
    )
    # everything sampled that a criterion keeps scores at least its cut; what it prunes, at most
    # (a global budget may empty a layer: then nothing there is kept, and the cut lies above all of it)
    assert np.all(comp.magnitude[comp.kept_by_magnitude] >= comp.cut_magnitude)
    assert np.all(comp.magnitude[~comp.kept_by_magnitude] <= comp.cut_magnitude)
    assert np.all(comp.saliency[comp.kept_by_obd] >= comp.cut_obd)
    assert np.all(comp.saliency[~comp.kept_by_obd] <= comp.cut_obd)


@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_the_worked_example_is_obds_formula_with_both_ranks(small_net, hessian, mode):
    c = explain.criteria(small_net, hessian, mode)
    comp = explain.compare(c, 0.8, layer=1, sample=500)
    e = comp.example
    kernel = small_net.layers[1].kernel
    if mode == "weight":
        assert e.weight == kernel[e.row, e.column] and e.hessian == hessian[1][e.row, e.column]
        assert e.saliency == pytest.approx(0.5 * e.hessian * e.weight**2)
        magnitude, saliency = np.abs(kernel).ravel(), (0.5 * hessian[1] * kernel.astype(np.float64) ** 2).ravel()
    else:
        assert e.row is None and e.hessian is None
        assert e.weight == pytest.approx(np.linalg.norm(kernel[:, e.column]))
        magnitude = np.linalg.norm(kernel, axis=0)
        saliency = (0.5 * hessian[1] * kernel.astype(np.float64) ** 2).sum(axis=0)
        assert e.saliency == pytest.approx(saliency[e.column])
    assert e.of == magnitude.size
    assert e.magnitude_rank == 1 + int((magnitude > magnitude[e.index]).sum())  # 1 = most important
    assert e.obd_rank == 1 + int((saliency > saliency[e.index]).sum())
    assert e.kept_by_obd and not e.kept_by_magnitude  # the story told first: OBD keeps what magnitude deletes


def test_compare_refuses_a_layer_that_is_not_pruned(small_net, hessian):
    c = explain.criteria(small_net, hessian)
    with pytest.raises(ValueError, match=r"pruned layers \[0, 1\]"):
        explain.compare(c, 0.5, layer=2)
    with pytest.raises(ValueError, match="one kernel-shaped array per layer"):
        explain.criteria(small_net, hessian[:-1])
    with pytest.raises(ValueError, match="compare a loss-aware split per layer"):
        explain.criteria(small_net, hessian, budget="loss-aware")


def test_the_diagram_narrows_with_unit_pruning_and_thins_with_weight_pruning(small_net):
    unit = plan(small_net, "magnitude", "unit").prune(0.75)
    d = explain.diagram(unit)
    assert d.units == (784, 128, 64, 10) and d.alive == (784, 32, 16, 10)
    weight = plan(small_net, "magnitude", "weight").prune(0.75)
    d = explain.diagram(weight)
    assert d.kept == tuple(int(m.sum()) for m in weight.masks)
    assert d.weights == (784 * 128, 128 * 64, 64 * 10)
    assert d.effective == tuple(l.effective_weights for l in report(weight).layers)


def test_confusion_matrix_counts_every_prediction(small_net, mnist, dense_eval):
    m = explain.confusion(mnist.y_test, dense_eval.predictions)
    assert m.shape == (10, 10) and m.sum() == len(mnist.y_test)
    assert np.trace(m) == round(dense_eval.accuracy * len(mnist.y_test))
    assert np.array_equal(m.sum(axis=1), np.bincount(mnist.y_test, minlength=10))
    with pytest.raises(ValueError, match="classes in"):
        explain.confusion([1, 2], [3, 10])


def test_probabilities_are_the_softmax_of_the_logits(small_net, mnist):
    p = explain.probabilities(small_net, mnist.x_test[0])
    assert p.shape == (10,) and p.sum() == pytest.approx(1.0)
    assert p.argmax() == small_net.logits(mnist.x_test[:1]).argmax()
