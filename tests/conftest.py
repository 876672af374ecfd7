"""Fixtures shared across test files: tiny generators trained here for two steps, and signing keys."""
from __future__ import annotations

import pytest
import torch

from provenance.c2pa.keys import init_keys
from provenance.generators.training import TrainConfig, train

TINY = {
    "gan": {"latent_channels": 4, "generator_widths": (16, 8, 8), "discriminator_widths": (8, 16)},
    "diffusion": {"base_channels": 8, "channel_mults": (1, 2), "timesteps": 100, "sample_steps": 4},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run single-threaded: faster on a shared 2-core machine, and bit-reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_train_config(**overrides) -> TrainConfig:
    fields = dict(steps=4, batch_size=4, patch=16, log_every=2, sample_every=2, checkpoint_every=2,
                  grid_images=4, grid_size=32)
    return TrainConfig(**{**fields, **overrides})


def _tiny(family: str, tmp_path_factory) -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp(f"tiny_{family}")
    train(family, directory, tiny_train_config(steps=2), TINY[family])
    torch.set_num_threads(threads)
    return directory


@pytest.fixture(scope="session")
def tiny_gan(tmp_path_factory):
    return _tiny("gan", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_diffusion(tmp_path_factory):
    return _tiny("diffusion", tmp_path_factory)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys"), common_name="test generator signer")
