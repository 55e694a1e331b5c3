"""Fine-tuning keeps masks exact and recovers accuracy; the gradual schedule; sweeps with fine-tuning."""

import numpy as np
import pytest

from bad_inputs import BAD_EPOCHS, FINETUNE_EPOCHS_ERROR, METHOD_ERROR, SPARSITY_ERROR
from obd.core.config import TrainConfig
from obd.core.pruning import prune, prune_count
from obd.runtime.evaluate import evaluate
from obd.training.finetune import check_epochs, finetune, gradual, schedule
from obd.work.sweep import sweep

QUICK = TrainConfig(epochs=1, batch_size=64, learning_rate=1e-3, train_limit=5000)  # 0.5 epoch = 40 steps


@pytest.mark.parametrize("mode, k", [("weight", 0.97), ("unit", 0.8)])
def test_finetune_keeps_masks_and_improves_accuracy(small_net, mnist, mode, k):
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    pruned = prune(small_net, k, mode)
    seen = []
    tuned = finetune(pruned, mnist, 0.5, seen.append, QUICK)
    for layer, m, old in zip(tuned.net.layers, tuned.masks, pruned.masks):
        assert np.array_equal(m, old)
        assert (layer.kernel[~m] == 0).all()
        if mode == "unit" and layer.bias is not None:
            assert (layer.bias[~m.any(axis=0)] == 0).all(), "pruned units stay dead"
    assert evaluate(tuned.net, x, y).accuracy > evaluate(pruned.net, x, y).accuracy + 0.02
    assert seen[-1].step == seen[-1].steps == 40 and (seen[-1].stage, seen[-1].stages) == (1, 1)
    assert tuned.sparsity == k and tuned.mode == mode


def test_schedule_is_polynomial_decay_to_the_target():
    s = schedule(0.9, 4)
    assert s[-1] == pytest.approx(0.9) and all(a < b for a, b in zip(s, s[1:]))
    assert s[0] == pytest.approx(0.9 * (1 - 0.75**3))
    with pytest.raises(ValueError, match="at least 1"):
        schedule(0.9, 0)


def test_gradual_masks_only_grow_and_end_exact(small_net, mnist):
    seen = []
    p = gradual(small_net, 0.9, mnist, epochs=0.4, steps=2, progress=seen.append, config=QUICK)
    assert [int((~m).sum()) for m in p.masks[:-1]] == [prune_count(0.9, l.kernel.size) for l in small_net.layers[:-1]]
    assert sorted({s.stage for s in seen}) == [1, 2] and seen[0].sparsity == pytest.approx(schedule(0.9, 2)[0])
    for layer, m in zip(p.net.layers, p.masks):
        assert (layer.kernel[~m] == 0).all()
    for method in ("obs", "sparsegpt"):
        with pytest.raises(ValueError, match=f"for {method} prune one-shot"):
            gradual(small_net, 0.9, mnist, method=method)


def test_sweep_adds_a_fine_tuned_record_per_point(small_net, mnist):
    x, y = mnist.x_test[:1000], mnist.y_test[:1000]
    records = sweep(small_net, [0.95], ["weight"], x=x, y=y, finetune_epochs=0.05, train_data=mnist)
    assert [r.finetune_epochs for r in records] == [0.0, 0.05]
    assert records[0].kept_weights == records[1].kept_weights
    with pytest.raises(ValueError, match="training data"):
        sweep(small_net, [0.5], x=x, y=y, finetune_epochs=1)
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        sweep(small_net, [0.5], x=x, y=y, finetune_epochs=-1, train_data=mnist)


def test_sweep_prunes_gradually_when_asked(small_net, mnist):
    x, y = mnist.x_test[:1000], mnist.y_test[:1000]
    seen = []
    records = sweep(
        small_net,
        [0.9],
        ["weight", "unit"],
        x=x,
        y=y,
        finetune_epochs=0.05,
        gradual_steps=2,
        train_data=mnist,
        progress=seen.append,
    )
    assert [(r.mode, r.finetune_epochs, r.gradual_steps) for r in records] == [
        ("weight", 0.0, 1),
        ("weight", 0.05, 2),
        ("unit", 0.0, 1),
        ("unit", 0.05, 2),
    ]
    assert [s.gradual_steps for s in seen] == [1, 2, 1, 2]
    assert records[0].kept_weights == records[1].kept_weights, "the gradual masks end at the same count"
    assert records[1].accuracy > records[0].accuracy, "fine-tuning recovers from one-shot pruning at 90 %"


def test_sweep_checks_gradual_settings_before_working(small_net, mnist):
    x, y = mnist.x_test[:10], mnist.y_test[:10]
    with pytest.raises(ValueError, match=r"give fine-tuning epochs too \(finetune_epochs, --finetune-epochs\)"):
        sweep(small_net, [0.5], x=x, y=y, gradual_steps=3, train_data=mnist)
    with pytest.raises(ValueError, match="at least 1"):
        sweep(small_net, [0.5], x=x, y=y, finetune_epochs=1, gradual_steps=0, train_data=mnist)
    seen = []
    with pytest.raises(ValueError, match="for obs prune one-shot"):
        sweep(
            small_net,
            [0.5],
            x=x,
            y=y,
            methods=["magnitude", "obs"],
            finetune_epochs=1,
            gradual_steps=2,
            train_data=mnist,
            progress=seen.append,
        )
    assert seen == [], "nothing ran before the error"


@pytest.mark.parametrize("bad", BAD_EPOCHS, ids=repr)
def test_check_epochs_refuses_every_bad_value(bad):
    with pytest.raises(ValueError, match=FINETUNE_EPOCHS_ERROR):
        check_epochs(bad)


@pytest.mark.parametrize("entry", ["finetune epochs", "gradual sparsity", "gradual method", "gradual epochs"])
def test_each_fine_tuning_entry_point_calls_the_validators(entry, small_net, mnist):
    """One bad value per entry point and validator (the validators' own tests try every bad value)."""
    calls = {
        "finetune epochs": (lambda: finetune(prune(small_net, 0.5), mnist, -1), FINETUNE_EPOCHS_ERROR),
        "gradual sparsity": (lambda: gradual(small_net, 1.5, mnist), SPARSITY_ERROR),
        "gradual method": (lambda: gradual(small_net, 0.5, mnist, method="magic"), METHOD_ERROR),
        "gradual epochs": (lambda: gradual(small_net, 0.5, mnist, epochs=-1), FINETUNE_EPOCHS_ERROR),
    }
    call, message = calls[entry]
    with pytest.raises(ValueError, match=message):
        call()
