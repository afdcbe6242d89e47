"""benchmarks/point_mass_probe.py measures the standard point_mass render: a ball of a few pixels,
a success radius of ~3 px, and full force moving the mass little per planning horizon."""

import numpy as np

from benchmarks import point_mass_probe


def test_loss_units_and_footprint_on_hand_made_images():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[1, 2] = 255  # one white pixel: 3 channels x 0.5 x 1^2
    assert point_mass_probe.loss_units(a, b) == 1.5
    assert point_mass_probe.footprint(b, a).sum() == 1
    b[0, 0] = 8  # at the threshold: not counted
    assert point_mass_probe.footprint(b, a).sum() == 1


def test_probe_measures_the_ball_and_the_reach(tmp_path):
    out = point_mass_probe.main(["--horizons", "2", "10", "--starts", "20", "--json", str(tmp_path / "p.json")])
    assert all(1 <= p <= 30 for p in out["ball_pixels"])  # a few pixels of 4096
    assert 0.1 < np.mean(out["ball_loss"]) < out["frame_loss_vs_grey"] / 50
    assert 1.5 < out["success_radius_px"] < 6
    reach = out["full_force_displacement_m"]
    assert 0 < reach[2] < reach[10] < out["mean_goal_distance_m"]
    assert (tmp_path / "p.json").is_file()
