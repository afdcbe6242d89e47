"""benchmarks/bench_gpu.py runs on a CPU at tiny sizes (--tiny), imports nothing that needs dm_control,
MuJoCo, torchrl or matplotlib (the GPU machine has none), and refuses float16 off CUDA as a row."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from benchmarks import bench_gpu
rows = bench_gpu.main(["--tiny", "--device", "cpu", "--models", "planet", "dreamerv2+ac", "--modes", "eager", "bf16",
                       "fp16", "graph", "--repeats", "2", "--warmup", "0", "--json", sys.argv[1]])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"dm_control", "mujoco", "torchrl", "envs", "matplotlib"})
print("HEAVY", json.dumps(heavy))
"""


def test_tiny_cpu_run_times_each_mode_and_imports_no_simulator(tmp_path):
    out_json = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out_json)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'HEAVY []' in done.stdout
    rows = {(r["model"], r["mode"]): r for r in json.loads(out_json.read_text())["rows"]}
    assert set(rows) == {(m, mode) for m in ("planet", "dreamerv2+ac") for mode in ("eager", "bf16", "fp16", "graph")}
    for model in ("planet", "dreamerv2+ac"):
        for mode in ("eager", "bf16"):
            r = rows[(model, mode)]
            assert r["updates_per_s"] > 0 and r["updates"] >= 2 and r["size"] == [4, 8], r
            assert 0 < r["loss"] < 1e6
        assert rows[(model, "fp16")]["skipped"] == "skipped: float16 needs CUDA (GradScaler)"
        assert rows[(model, "graph")]["skipped"] == "skipped: CUDA graphs need CUDA"
    assert rows[("planet", "bf16")]["loss"] != rows[("planet", "eager")]["loss"]  # autocast really ran
    assert "| planet | 4x8 | fp16 | - |" in done.stdout and "updates/s | ms/update | vs eager" in done.stdout
