"""benchmarks/bench_model.py's FLOP ceiling: the update's counted FLOPs scale with the batch, the matmul rate is sane."""

from benchmarks import bench_model as bm


def test_update_flops_scale_with_batch_and_matmul_rate_is_positive():
    small, double = bm.update_flops("ours", 1, 4), bm.update_flops("ours", 2, 4)
    assert small > 1e8  # conv encoder + decoder of 4 frames, forward and backward
    assert 1.9 < double / small < 2.1  # every counted op is per frame
    assert 0.1 < bm.matmul_gflops(n=256, repeats=2) < 1e5
