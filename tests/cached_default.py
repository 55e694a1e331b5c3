"""The dense default (challenge) model for the tests that need a well-trained network: read from the user's
cache (~/.cache/obd), where the app's first start put it, and trained into the test session's cache only when
it is not there (about 70 s on 2 cores)."""

from pathlib import Path

from obd.core.config import TrainConfig, preset_spec
from obd.core.data import Mnist
from obd.core.network import Network, from_keras
from obd.training.model import cache_path, load_model, trained_model


def cached_default_net(mnist: Mnist) -> Network:
    spec, config = preset_spec("challenge"), TrainConfig()
    cached = Path.home() / ".cache" / "obd" / cache_path(spec, config).name
    model = load_model(cached) if cached.is_file() else trained_model(spec, config, mnist)[0]
    return from_keras(model)
