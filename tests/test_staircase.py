"""The staircase demo (the paper's Figure 1): composing with a projection onto the integers lets a
lower-norm base predictor extrapolate the staircase."""
import json
import os

from composed_ft import staircase


def test_staircase_composed_is_simpler_and_extrapolates(tmp_path):
    res = staircase.run(out=str(tmp_path))
    d, c = res["direct"], res["composed"]
    assert c["weight_norm"] < d["weight_norm"]
    assert c["mse_ood"] < d["mse_ood"] / 4
    assert c["mse_id"] < 0.2 and d["mse_id"] < 0.2  # both fit the labeled range
    assert os.path.getsize(tmp_path / "staircase.png") > 10_000
    assert json.load(open(tmp_path / "staircase.json")) == json.loads(json.dumps(res))


def test_soft_round_fixed_points_are_the_integers():
    import torch
    z = torch.tensor([-1.0, 0.0, 2.0, 0.3, 0.7, 2.2, 2.45])
    out = staircase.soft_round(z, 3)
    assert torch.allclose(out[:3], z[:3])
    assert torch.allclose(out[3:6], torch.tensor([0.0, 1.0, 2.0]), atol=1e-3)
    assert 2.0 < out[6] < 2.45  # near the half-integer the pull is slow but toward the nearest step
