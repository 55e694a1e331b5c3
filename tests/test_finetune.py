"""Fine-tuning keeps masks exact and recovers accuracy; the gradual schedule; sweeps with fine-tuning."""

import numpy as np
import pytest

from obd.config import TrainConfig
from obd.evaluate import evaluate
from obd.finetune import finetune, gradual, schedule
from obd.pruning import prune, prune_count
from obd.sweep import sweep

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
    with pytest.raises(ValueError, match="obs"):
        gradual(small_net, 0.9, mnist, method="obs")


def test_sweep_adds_a_fine_tuned_record_per_point(small_net, mnist):
    x, y = mnist.x_test[:1000], mnist.y_test[:1000]
    records = sweep(small_net, [0.95], ["weight"], x=x, y=y, finetune_epochs=0.05, train_data=mnist)
    assert [r.finetune_epochs for r in records] == [0.0, 0.05]
    assert records[0].kept_weights == records[1].kept_weights
    with pytest.raises(ValueError, match="training data"):
        sweep(small_net, [0.5], x=x, y=y, finetune_epochs=1)
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        sweep(small_net, [0.5], x=x, y=y, finetune_epochs=-1, train_data=mnist)
