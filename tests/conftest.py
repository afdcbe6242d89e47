"""Shared fixtures: seeded generators, tiny run dirs. Rendering is headless (MUJOCO_GL=egl)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
import torch

# Tests use tiny tensors: one intra-op thread is faster, and two threads contend badly (20-30x
# slower) when the 2-core machine is shared. An explicit OMP_NUM_THREADS wins.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
