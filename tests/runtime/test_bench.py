"""`bench`'s checks: one bad value per check it makes (the validators' own tests, in tests/core/test_pruning.py,
try every bad value); the bench records themselves are tested in tests/runtime/test_engines.py."""

import pytest

from bad_inputs import MODE_ERROR, SPARSITY_ERROR
from obd.runtime.bench import bench


@pytest.mark.parametrize("check", ["sparsity", "mode"])
def test_bench_calls_each_validator_before_timing(check, small_net, mnist):
    x = mnist.x_test[:10]
    calls = {
        "sparsity": (lambda: bench(small_net, x, ["weight"], [1.5], [1], 1), SPARSITY_ERROR),
        "mode": (lambda: bench(small_net, x, ["Weight"], [0.5], [1], 1), MODE_ERROR),
    }
    call, message = calls[check]
    with pytest.raises(ValueError, match=message):
        call()
