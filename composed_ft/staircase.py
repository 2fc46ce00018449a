"""The paper's Figure 1 in one minute on a CPU: composing with a denoiser lets the base predictor
be a simpler function.

Task: univariate regression onto a staircase, y = floor(x). The valid outputs are the integers, so
the "denoiser" projects onto them: Π(z) = round(z). A predictor f (a small ReLU network) is trained
on a few labeled points from x ∈ [0, 4) and tested on [0, 8), half of it outside the training
range (out of distribution).

- Direct: minimize MSE(f(x), y) + λ‖W‖². f must bend into every step; outside the training range it
  extrapolates the last bend and drifts off the staircase.
- Composed: minimize MSE(Π(f(x)), y) + λ‖W‖². f only has to land within ±0.5 of the right step,
  and a line does (f(x) = x − 0.5): the L2 penalty finds that simple, low-norm function, and Π(f(x))
  extrapolates the staircase.

round() has zero gradient, so training uses a smooth surrogate with the same fixed points: the map
s(z) = z − sin(2πz)/(2π) (monotone, integers are its attracting fixed points) applied `--sharpen`
times. Evaluation uses exact rounding.

    python -m composed_ft.staircase --out results/staircase
"""
import argparse
import json
import math
import os

import torch
from torch import nn

from .core.compose import l2_penalty, weight_params
from .core.io import atomic_path, write_json
from .core.seed import seed_everything


def soft_round(z, sharpen=3):
    for _ in range(sharpen):
        z = z - torch.sin(2 * math.pi * z) / (2 * math.pi)
    return z


def mlp(hidden=64):
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def fit_one(x, y, composed, steps, lr, lam, sharpen, seed):
    seed_everything(seed)
    f = mlp()
    opt = torch.optim.Adam(f.parameters(), lr=lr)
    ws = weight_params(f)
    for _ in range(steps):
        out = f(x)
        pred = soft_round(out, sharpen) if composed else out
        loss = ((pred - y) ** 2).mean() + lam * l2_penalty(ws)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return f


def run(n_train=12, steps=3000, lr=3e-3, lam=1e-3, sharpen=3, seed=0, out="results/staircase"):
    # A network this small gains nothing from intra-op threads, and when another process holds a
    # core, OpenMP threads spinning at barriers made it ~30x slower (measured): use one.
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    x_tr = torch.rand(n_train, 1, generator=g) * 4
    y_tr = torch.floor(x_tr)
    x_te = torch.linspace(0, 8, 801)[:-1, None]
    y_te = torch.floor(x_te)
    res = {"n_train": n_train, "steps": steps, "lr": lr, "l2": lam, "sharpen": sharpen, "seed": seed}
    curves = {}
    for name, composed in (("direct", False), ("composed", True)):
        f = fit_one(x_tr, y_tr, composed, steps, lr, lam, sharpen, seed)
        with torch.no_grad():
            base = f(x_te)
            pred = torch.round(base) if composed else base
            ind, ood = x_te[:, 0] < 4, x_te[:, 0] >= 4
            res[name] = {
                "weight_norm": l2_penalty(weight_params(f)).sqrt().item(),
                "mse_id": ((pred - y_te) ** 2)[ind].mean().item(),
                "mse_ood": ((pred - y_te) ** 2)[ood].mean().item(),
                "step_accuracy_ood": (torch.round(pred) == y_te)[ood].float().mean().item(),
            }
            if not composed:
                res[name]["direct_plus_round_mse_ood"] = ((torch.round(base) - y_te) ** 2)[ood].mean().item()
        curves[name] = (base[:, 0].numpy(), pred[:, 0].numpy())
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "staircase.json"), res)
    plot(os.path.join(out, "staircase.png"), x_tr, y_tr, x_te, y_te, curves, res)
    return res


def plot(path, x_tr, y_tr, x_te, y_te, curves, res):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for a, name in zip(ax, ("direct", "composed")):
        a.plot(x_te[:, 0], y_te[:, 0], color="0.75", lw=4, label="target floor(x)")
        base, pred = curves[name]
        if name == "direct":
            a.plot(x_te[:, 0], base, color="C0", label=f"Direct f(x)  (‖W‖={res[name]['weight_norm']:.1f})")
        else:
            a.plot(x_te[:, 0], base, color="C2", ls="--",
                   label=f"base predictor f(x)  (‖W‖={res[name]['weight_norm']:.1f})")
            a.plot(x_te[:, 0], pred, color="C3", label="Composed Π(f(x)) = round(f(x))")
        a.scatter(x_tr[:, 0], y_tr[:, 0], color="k", zorder=5, s=18, label="labeled examples")
        a.axvspan(4, 8, color="C1", alpha=0.06)
        a.text(6, -0.6, "out of distribution", ha="center", fontsize=8, color="C1")
        a.set_title(f"{name}: OOD MSE {res[name]['mse_ood']:.3f}")
        a.set_xlabel("x")
        a.legend(fontsize=7, loc="upper left")
        a.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m composed_ft.staircase", description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=12)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--l2", type=float, default=1e-3, help="λ of λ Σ‖W‖², the same for both methods")
    p.add_argument("--sharpen", type=int, default=3, help="iterations of the smooth rounding surrogate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/staircase")
    a = p.parse_args(argv)
    res = run(a.n_train, a.steps, a.lr, a.l2, a.sharpen, a.seed, a.out)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
