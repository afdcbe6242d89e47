"""Bad command-line inputs are refused in one sentence (exit 2, no traceback) before any work starts;
the CLI's help is fast (no torch) and complete; third-party noise is filtered.

Most refusals here happen before a run directory is read, so they need no trained run.
"""

import logging
import os
import subprocess
import sys
import types
import zlib
from pathlib import Path
import struct

import numpy as np
import pytest
import torch

from worldmodels.cli import commands
from worldmodels.cli.main import build_parser, main
from worldmodels.core.config import load_config
from worldmodels.evaluation.goal_images import load_goal_image

ROOT = Path(__file__).resolve().parents[1]


def _refused(capsys, argv, fragment):
    """``main(argv)`` exits 2 with ``error: ...fragment...`` on stderr and no traceback."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses bad argument values itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error: " in err and fragment in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["plan", "RUN", "--goal", "g.png", "--steps", "-1"], "argument --steps: must be an integer >= 1, got -1"),
        (["plan", "RUN", "--goal", "g.png", "--steps", "0"], "argument --steps: must be an integer >= 1, got 0"),
        (["eval", "RUN", "--episodes", "0"], "argument --episodes: must be an integer >= 1, got 0"),
        (["imagine", "RUN", "--episodes", "0"], "argument --episodes: must be an integer >= 1, got 0"),
        (["collect", "--episodes", "0", "--out", "x"], "argument --episodes: must be an integer >= 1, got 0"),
        (["eval", "RUN", "--device", "gpu"], "argument --device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["plan", "RUN", "--goal", "g.png", "--device", "gpu"], "argument --device: must be auto, cpu, cuda or cuda:N"),
        (["imagine", "RUN", "--device", "gpu"], "argument --device: must be auto, cpu, cuda or cuda:N"),
    ],
    ids=["steps-1", "steps0", "eval-episodes0", "imagine-episodes0", "collect-episodes0", "eval-gpu", "plan-gpu",
         "imagine-gpu"],  # fmt: skip
)
def test_bad_argument_values_are_refused_by_the_parser(capsys, argv, fragment):
    _refused(capsys, argv, fragment)


def test_every_command_with_device_checks_it():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public API
    with_device = [name for name, sub in subcommands.items() if any("--device" in a.option_strings for a in sub._actions)]
    assert sorted(with_device) == ["eval", "imagine", "plan"]
    for name in with_device:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "RUN", "--goal", "g", "--device", "gpu"] if name == "plan" else [name, "RUN", "--device", "gpu"])


@pytest.mark.parametrize(
    "goal, fragment",
    [
        ("point_mass:abc", "--goal 'point_mass:abc': the goal index after ':' must be an integer 0..8, e.g. point_mass:3."),
        ("point_mass:-1", "must be an integer 0..8"),
        ("point_mass:99", "must be an integer 0..8"),
        ("nosuchset:3", "is neither an existing image file nor TASKSET:INDEX with a goal task set (point_mass, reacher"),
    ],
)
def test_bad_goal_task_index_is_refused_before_the_run_is_loaded(tmp_path, capsys, goal, fragment):
    # the run directory does not exist: the goal is checked first
    _refused(capsys, ["plan", str(tmp_path / "no_run"), "--goal", goal], fragment)


@pytest.mark.parametrize("argv_of", [
    lambda t: ["plan", str(t / "no_run"), "--goal", "point_mass:1", "--video", "/sys/plan.mp4"],
    lambda t: ["eval", str(t / "no_run"), "--video", "/sys/eval.mp4"],
    lambda t: ["imagine", str(t / "no_run"), "--out", "/sys/openloop.gif"],
], ids=["plan", "eval", "imagine"])
def test_unwritable_video_is_one_sentence_before_any_work(tmp_path, capsys, argv_of):
    err = _refused(capsys, argv_of(tmp_path), "cannot be written")
    assert "ffmpeg" not in err and "GIF" not in err and err.count("\n") == 1


def test_video_with_another_ending_is_refused_before_any_work(tmp_path, capsys):
    _refused(capsys, ["eval", str(tmp_path / "no_run"), "--video", str(tmp_path / "v.avi")], "must end in .mp4 or .gif")


def test_eval_goals_video_must_be_a_writable_folder(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("")
    _refused(capsys, ["eval", str(tmp_path / "no_run"), "--goals", "point_mass", "--video", str(file)],
             "is an existing file, not a directory")  # fmt: skip


@pytest.mark.parametrize("out, fragment", [("/sys/x", "cannot be created"), (None, "is an existing file, not a directory")])
def test_collect_to_an_unwritable_out_is_one_sentence(tmp_path, capsys, out, fragment):
    if out is None:
        out = tmp_path / "file"
        out.write_text("")
    _refused(capsys, ["collect", "--episodes", "1", "--out", str(out)], f"--out {str(out)!r} {fragment}")


def test_write_video_refuses_an_unwritable_path_before_ffmpeg(recwarn):
    from worldmodels.viz.video import write_video

    with pytest.raises(ValueError, match=r"video file '/sys/v.mp4' cannot be written \(.*\); pass a path you can write to."):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), "/sys/v.mp4")
    assert not [w for w in recwarn if "GIF" in str(w.message)]


def _fake_trained(method: str, has_reward: bool):
    cfg = load_config(None, [f"method={method}", "env.domain=point_mass", "env.task=easy", "device=cpu"])
    model = types.SimpleNamespace(has_reward=has_reward)
    env = types.SimpleNamespace(close=lambda: None)
    return types.SimpleNamespace(cfg=cfg, method=types.SimpleNamespace(task_reward=True), env=env, model=model,
                                 behaviour=None)  # fmt: skip


def test_eval_of_a_reward_free_dmc_run_says_pass_goals(monkeypatch, capsys):
    fake = _fake_trained("pldm", has_reward=False)
    monkeypatch.setattr(commands, "load_trained", lambda run_dir, device=None, render=False: fake)
    err = _refused(capsys, ["eval", "RUN"], "This pldm run learned without task reward, so it is evaluated on goal "
                                            "images: pass --goals SET (point_mass, reacher")  # fmt: skip
    assert "Objective" not in err


def _png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG (grey ``[H, W]`` or RGB ``[H, W, 3]``); Pillow cannot write 16-bit RGB."""
    h, w = array.shape[:2]
    colour = 0 if array.ndim == 2 else 2
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_16_bit_grey_and_rgb_goal_pngs_are_treated_alike(tmp_path):
    values = (np.arange(16 * 16 * 3).reshape(16, 16, 3) * 997 % 65536).astype(np.uint16)
    rgb = load_goal_image(_png16(tmp_path / "rgb16.png", values), (3, 16, 16))
    grey = load_goal_image(_png16(tmp_path / "grey16.png", values[..., 0]), (1, 16, 16))
    expected = torch.from_numpy((values >> 8).astype(np.uint8)).permute(2, 0, 1)
    assert rgb.dtype == grey.dtype == torch.uint8
    assert torch.equal(rgb, expected) and torch.equal(grey, expected[:1])


def test_unreadable_goal_image_says_not_a_readable_image(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError) as err:
        load_goal_image(junk, (3, 64, 64))
    assert str(err.value) == f"Could not read goal image {str(junk)!r}: it is not a readable image (PNG, JPG, ... or a .npy array)."


def _import_time_lines(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "worldmodels.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout, [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["plan", "--help"]])
def test_help_does_not_import_torch(args):
    out, imported = _import_time_lines(args)
    assert "usage: worldmodels" in out
    assert "torch" not in imported and "worldmodels.core.interface" not in imported


def test_help_names_existing_configs_in_plain_text():
    parser = build_parser()
    assert "``" not in parser.format_help()
    train_help = parser._subparsers._group_actions[0].choices["train"].format_help()  # noqa: SLF001
    named = [word.strip(",()") for word in train_help.split() if word.startswith("configs/")]
    assert named and all((ROOT / name).is_file() for name in named), named


def test_every_option_and_argument_has_help_text():
    parser = build_parser()
    missing = []
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001
        for action in sub._actions:  # noqa: SLF001
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_third_party_noise_is_filtered_and_real_warnings_kept(caplog):
    from worldmodels.cli.main import _quiet_third_party

    _quiet_third_party()
    absl = logging.getLogger("absl")
    with caplog.at_level(logging.WARNING):
        absl.warning("compiler attribute 'settotalmass' is deprecated and will be removed in a future release")
        absl.warning("a real warning")
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == ["a real warning"]
    torchrl = logging.getLogger("torchrl")
    assert not torchrl.isEnabledFor(logging.INFO) and torchrl.isEnabledFor(logging.WARNING)


def test_a_cheetah_command_prints_no_deprecation_or_info_line(tmp_path):
    """cheetah's XML is what triggers absl's settotalmass warning."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = ["collect", "--domain", "cheetah", "--task", "run", "--episodes", "1", "--episode-length", "4",
            "--image-size", "16", "--out", str(tmp_path / "data")]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "worldmodels.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "settotalmass" not in done.stderr + done.stdout
    assert "[INFO]" not in done.stderr + done.stdout


def test_package_sets_mujoco_gl_first_and_loads_its_reexports_on_first_use():
    code = (
        "import os, sys\n"
        "os.environ.pop('MUJOCO_GL', None)\n"
        "import worldmodels\n"
        "assert os.environ['MUJOCO_GL'] == 'egl'\n"
        "assert 'torch' not in sys.modules, 'import worldmodels imported torch'\n"
        "from worldmodels import WorldModel, check_world_model, load_config, keys\n"
        "assert WorldModel.__module__ == 'worldmodels.core.interface' and keys.ACTION == 'action'\n"
        "assert sorted(worldmodels.__all__) == sorted(n for n in dir(worldmodels) if n in worldmodels.__all__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_library_warnings_print_as_one_plain_line(capsys):
    import warnings

    from worldmodels.cli.main import _plain_library_warnings
    from worldmodels.training.run_dir import CheckpointFallback

    with warnings.catch_warnings(record=True) as python_handled:
        warnings.simplefilter("always")
        _plain_library_warnings()
        _plain_library_warnings()  # idempotent: one line, not two
        warnings.warn(CheckpointFallback("latest.pt is unreadable; using previous.pt"))
        warnings.warn(UserWarning("a third-party warning"))
    err = capsys.readouterr().err
    assert err.count("warning: latest.pt is unreadable; using previous.pt\n") == 1
    assert "third-party" not in err  # other warnings keep Python's own handling
    assert [str(w.message) for w in python_handled] == ["a third-party warning"]


def test_overrides_may_follow_options(tmp_path, capsys):
    from worldmodels.cli.main import main

    code = main(["train", "configs/pldm_two_rooms_cpu.yaml", "--run-dir", str(tmp_path / "r"), "offline.updatez=3"])
    assert code == 2 and "Unknown config key 'offline.updatez'" in capsys.readouterr().err  # reached the config
    with pytest.raises(SystemExit):
        main(["train", "configs/pldm_two_rooms_cpu.yaml", "--run-dir", str(tmp_path / "r"), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
