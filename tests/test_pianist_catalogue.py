"""Slow: the kinematics checks over the whole keyboard catalogue and a spread of chorales."""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_kinematics_over_the_catalogue(tmp_path):
    path = Path(__file__).parents[1] / "scripts" / "check_pianist.py"
    spec = importlib.util.spec_from_file_location("check_pianist", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    summary = mod.main(["--output", str(tmp_path), "--seconds", "40", "--chorales", "10"])
    assert summary["fingertip_over_key"] >= 0.95 and summary["worst_piece_fingertip_over_key"] >= 0.95
    assert summary["max_speed"] < summary["speed_limit"]
    assert summary["bone_length_spread"] < 0.02
    assert summary["dropped"] < 0.10
