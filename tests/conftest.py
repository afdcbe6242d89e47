"""Shared fixtures: seeded generators, tiny run dirs. Rendering is headless (MUJOCO_GL=egl)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
import torch

# Respect an explicit OMP_NUM_THREADS (1 is much faster for tiny tensors on a busy machine).
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
