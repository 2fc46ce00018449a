"""The runners' hyperparameter comments state what an empty variable means at the cpu and paper presets
(`LAM=${LAM:-}   # λ of the CE term (cpu 1, paper 1)`), generated from the preset tables by
scripts/runner_settings.py: which stage settings a variable reaches is found by planning the runner with
every variable set to a sentinel, so a comment cannot drift from the tables, nor a new variable go without
its values."""
import pytest
from conftest import load_script

settings = load_script("runner_settings")


@pytest.mark.parametrize("runner", settings.RUNNERS)
def test_every_runner_variable_states_the_values_its_stages_resolve(runner):
    problems, _ = settings.check(runner)
    assert problems == [], "\n".join(problems) + "\n(python scripts/runner_settings.py --write rewrites them)"


def test_a_drifted_comment_or_a_missing_one_is_caught_and_rewritten():
    path = f"{settings.REPO}/imggen/runner.sh"
    text = open(path).read()
    assert "UNET_WIDTH=${UNET_WIDTH:-}         # U-Net base width (cpu 16, paper 64)" in text
    drifted = text.replace("U-Net base width (cpu 16, paper 64)", "U-Net base width (cpu 32, paper 64)")
    drifted = drifted.replace("L2_COMPOSED=${L2_COMPOSED:-}       # (cpu 0.0001, paper 0.0001)",
                              "L2_COMPOSED=${L2_COMPOSED:-}")
    problems, fixed = settings.check("imggen/runner.sh", drifted)
    assert len(problems) == 2 and "UNET_WIDTH" in problems[0] and "(cpu 16, paper 64)" in problems[0]
    assert fixed == text
    # what reaches several stage tables states each table's value where they differ
    reach = settings.reach("code/runner.sh")
    assert settings.describe(reach["LAM"]) == "(cpu 1, paper 1)"
    assert settings.describe(reach["CHECKPOINT_SELECT"]).startswith("(cpu best [pretrain] / last [direct")
    # a setting variable that no stage receives is a bug of its own
    problems, _ = settings.check("imggen/runner.sh", text.replace("\nBATCH=", "\nNEW=${NEW:-}\nBATCH=", 1))
    assert len(problems) == 1 and "NEW reaches no stage" in problems[0]
    # a default of its own must be the tables' value
    problems, _ = settings.check("imggen/runner.sh", text.replace("BLUR_MAX=${BLUR_MAX:-2}", "BLUR_MAX=${BLUR_MAX:-3}"))
    assert len(problems) == 1 and "defaults to 3" in problems[0]
