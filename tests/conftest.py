"""Shared fixtures: seeded generators, tiny run dirs. Rendering is headless (MUJOCO_GL=egl)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
