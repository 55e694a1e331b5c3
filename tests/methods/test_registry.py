"""The method registry's checks: method names and calibration sizes, each tried with every bad value, and the
registry's entry points (`plan`, `prune_with`) with one bad value per check they make."""

import pytest

from bad_inputs import BAD_NAMES, BUDGET_ERROR, METHOD_ERROR, MODE_ERROR, SPARSITY_ERROR
from obd.methods.registry import calibration, check_method, plan, prune_with


@pytest.mark.parametrize("bad", BAD_NAMES + ["magic", "OBD", "obs "], ids=repr)
def test_check_method_refuses_every_bad_value(bad):
    with pytest.raises(ValueError, match=METHOD_ERROR):
        check_method(bad)


@pytest.mark.parametrize("bad", [0, -1, 60_001, 1.5, True, None, "10"], ids=repr)
def test_bad_calibration_sizes(bad, mnist):
    with pytest.raises(ValueError, match=r"calibration size must be a whole number in \[1, 60000\]"):
        calibration(mnist, bad)


@pytest.mark.parametrize(
    "entry", ["plan method", "plan mode", "plan budget", "plan sparsity", "prune_with sparsity", "prune_with method"]
)
def test_each_registry_entry_point_calls_the_validators(entry, small_net):
    """One bad value per entry point and validator (the validators' own tests try every bad value)."""
    calls = {
        "plan method": (lambda: plan(small_net, "magic"), METHOD_ERROR),
        "plan mode": (lambda: plan(small_net, "magnitude", "Weight"), MODE_ERROR),
        "plan budget": (lambda: plan(small_net, "magnitude", "weight", "world"), BUDGET_ERROR),
        "plan sparsity": (lambda: plan(small_net).prune(1.5), SPARSITY_ERROR),
        "prune_with sparsity": (lambda: prune_with(small_net, 1.5), SPARSITY_ERROR),
        "prune_with method": (lambda: prune_with(small_net, 0.5, "weight", "magic"), METHOD_ERROR),
    }
    call, message = calls[entry]
    with pytest.raises(ValueError, match=message):
        call()
