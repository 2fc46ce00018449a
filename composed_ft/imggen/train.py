"""The stages of the font experiment: train the denoiser Π; train a predictor f (Direct, or
Composed through the frozen Π with an L2 penalty on f); evaluate f and Π∘f on the test set.

Each stage is one run directory (composed_ft.core.runs) and one call of the shared training loop
(composed_ft.core.trainer.fit)."""
import json
import logging
import os
import time

import torch
import torch.nn.functional as F

from ..core import checkpoint, distributed, precision
from ..core.compose import Composed, freeze, l2_penalty, nonbias_params, weight_params
from ..core.errors import UserError
from ..core.io import atomic_path
from ..core.objective import composed_mse
from ..core.perf import forward_flops
from ..core.runs import Run
from ..core.seed import seed_everything
from ..core.trainer import fit, load_best
from . import data, perturbations, plots
from .config import comparable, from_saved
from .models import FrozenUNet, MLPGenerator, make_unet

log = logging.getLogger(__name__)


def _batches(n, batch_size, device, ctx):
    """Shuffled index batches for one epoch (torch RNG, so resume replays the same order); under
    torchrun every rank draws the same permutation and keeps its shard of each global batch."""
    def make(epoch):
        perm = torch.randperm(n)
        return [ctx.shard(perm[i:i + batch_size]).to(device) for i in range(0, n, batch_size)]
    return make


# A predictor run writes its checkpoints at most once a minute (core.trainer.fit's save_every_s: a killed run
# loses under a minute; an improved epoch's weights wait in memory), not at every improved epoch: at 500 labels an
# epoch is 2 updates, and one best checkpoint per epoch took 661 s of the 5,485 s Composed run (results/NOTES.md).
# The smoke preset keeps one checkpoint per --save-interval epochs (0: the epoch rule).
CHECKPOINT_EVERY_S = {"smoke": 0.0, "cpu": 60.0, "paper": 60.0}

# the switch that retrains a changed setting, named in the refusal
OVERWRITE = "--overwrite (OVERWRITE=1 in imggen/runner.sh)"
EXTEND = "--extend (EXTEND=1 in imggen/runner.sh) to continue the run to the larger budget"
BUDGET_KEYS = ("max_epoch", "max_update")


def _open(args, extend=None):
    """(cfg, run, ctx, extending) of a stage, before any "finished" shortcut: the one rule for a changed
    setting (as in the code stages): the resolved config is compared with the run's config.json, and a run
    made with other settings is refused, naming each key (old -> new) and the switch, or with --overwrite
    moved aside to RUN.replaced-<time> and trained afresh (Run.refuse_or_replace). `extend` = (budget,
    outputs) when --extend is given: a run that differs only in its budget (BUDGET_KEYS) is continued to
    the larger one instead (Run.start; `extending` is then True and the run is started already). Rank 0
    does this, the other ranks wait; ctx is the torchrun context (one process without torchrun)."""
    cfg = args.config
    ctx = distributed.setup(cfg.device)
    precision.set_denormals(ctx.device, cfg.denormals)
    run = Run(cfg.run_dir, cfg.to_dict())
    extending = False
    if ctx.is_main:
        try:
            diff = run.differences(upgrade=comparable)
            extending = bool(extend and diff and set(diff) <= set(BUDGET_KEYS))
            if extending:
                run.start(upgrade=comparable, extend=(BUDGET_KEYS, *extend))
            else:
                budget_only = diff and set(diff) <= set(BUDGET_KEYS) and cfg.stage == "train"
                run.refuse_or_replace(args.overwrite, upgrade=comparable,
                                      switch=OVERWRITE + (f", or {EXTEND}" if budget_only else ""))
        except Exception:
            ctx.close()
            raise
    ctx.barrier()
    return cfg, run, ctx, extending


def _finished(run, ctx):
    """The results of a run finished with these settings (nothing to do), else None."""
    if not run.finished:
        return None
    log.info("%s: finished already with these settings, nothing to do", run.path)
    ctx.close()
    return run.results()


def _begin(run, ctx, extending):
    """Write the run's config.json (rank 0; unless an extension wrote it) before training: a new run, or a
    killed one resumed. Run.start logs the resolved settings as one block."""
    if ctx.is_main and not extending:
        run.start(upgrade=comparable)
    ctx.barrier()


def _adam(params, cfg, device):
    """The authors' Adam. Fused (one vectorized kernel per parameter, not ~10 tensor ops each) where torch has the
    kernel: the same update up to float rounding; torch.profiler put the per-tensor Adam at ~9% of the composed
    update on a CPU (results/BENCH.md). A run resumed from a checkpoint keeps the optimizer settings it saved."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type in ("cpu", "cuda"))


@torch.no_grad()
def _fixed_noise(fn, x, seed):
    """Perturb a validation set once, with its own seed, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(x)


# ---------------------------------------------------------------- denoiser

def _curve_logger(run, model, val_in, holdout, every, ctx):
    """Held-out MSE every `every` updates, against training seconds (validation time excluded), as
    metrics rows {"updates", "train_s", "curve_val_mse"}: the denoiser's quality-vs-time curve at a
    finer grain than one point per epoch. Returns (wrap_batches, tick): wrap fit()'s batches with the
    first, call the second at the start of every step (each step is one update).

    Resume: the counters restart from the last epoch row that fit() kept (it truncates later rows)."""
    st = {"updates": 0, "base_s": 0.0, "t0": None, "eval_s": 0.0}
    net = distributed.unwrap(model)

    def wrap_batches(make):
        def batches(epoch):
            if st["t0"] is None:  # first epoch of this process: continue the logged counters
                rows = [r for r in run.metrics() if "epoch" in r]
                st["updates"] = rows[-1]["updates"] if rows else 0
                st["base_s"] = sum(r["epoch_s"] for r in rows)
            else:
                st["base_s"] += time.perf_counter() - st["t0"] - st["eval_s"]
            st["t0"], st["eval_s"] = time.perf_counter(), 0.0
            return make(epoch)
        return batches

    def tick():  # st["updates"] updates are complete
        if every and st["updates"] and st["updates"] % every == 0 and ctx.is_main:
            t = time.perf_counter()
            train_s = st["base_s"] + t - st["t0"] - st["eval_s"]
            net.eval()
            with torch.no_grad():
                mse = F.mse_loss(net(val_in), holdout).item()
            net.train()
            run.log_metrics(updates=st["updates"], train_s=round(train_s, 2), curve_val_mse=mse)
            st["eval_s"] += time.perf_counter() - t
        st["updates"] += 1

    return wrap_batches, tick


def denoise(args):
    """Train the U-Net Π on perturbed -> clean unlabeled glyphs. `args`: parse()'s (config, overwrite)."""
    cfg, run, ctx, _ = _open(args)
    done = _finished(run, ctx)
    if done is not None:
        return done
    t0 = time.time()
    device = ctx.device
    seed_everything(cfg.seed)
    clean, holdout = data.load_unlabeled(cfg.data, cfg.data_seed, cfg.unlabeled_fonts)
    _begin(run, ctx, False)
    clean, holdout = clean.to(device), holdout.to(device)
    perturb = perturbations.make(cfg.perturb, cfg.blur_max, cfg.contrast)
    val_in = _fixed_noise(perturb, holdout, cfg.seed + 12345)
    log.info("denoiser data: %d unlabeled images (+%d held out), perturbation %s", len(clean), len(holdout),
             cfg.perturb)
    model = ctx.wrap(make_unet(cfg.unet_width, cfg.unet_dropout, cfg.unet_layout).to(device))
    opt = _adam(model.parameters(), cfg, device)
    wrap_batches, tick = _curve_logger(run, model, val_in, holdout, cfg.curve_interval, ctx)

    def step(idx):
        tick()
        y = clean[idx]
        with torch.no_grad():
            x = perturb(y)
        return F.mse_loss(model(x), y), len(idx), {}

    def validate():
        return {"val_mse": F.mse_loss(model(val_in), holdout).item()}

    flops = 3 * forward_flops(distributed.unwrap(model), val_in)
    # The budget in updates: --max-update when given; else --max-epoch epochs, and at least
    # --min-updates (small unlabeled sets, the 100-font ablation, get more epochs).
    steps_per_epoch = -(-len(clean) // cfg.batch_size)
    if cfg.max_update:
        max_epoch, max_updates = -(-cfg.max_update // steps_per_epoch), cfg.max_update
    else:
        max_epoch, max_updates = max(cfg.max_epoch, -(-cfg.min_updates // steps_per_epoch)), 0
    summary = fit(run, model, opt, wrap_batches(_batches(len(clean), cfg.batch_size, device, ctx)), step, validate,
                  max_epoch=max_epoch, max_updates=max_updates, best_metric="val_mse", save_interval=1,
                  log_interval=1, flops_per_item=flops, device=device, ddp=ctx, precision_name=cfg.precision)
    if not ctx.is_main:
        return ctx.close()
    model = distributed.unwrap(model)
    load_best(run, model)
    model.eval()
    with torch.no_grad():
        res = {"val_mse_denoised": F.mse_loss(model(val_in), holdout).item(),
               "val_mse_perturbed": F.mse_loss(val_in, holdout).item(),
               "n_unlabeled": len(clean), "unet_layout": cfg.unet_layout, **summary,
               "wall_s": time.time() - t0 + summary["resumed_train_s"]}
        n_show = min(200, len(holdout)) // 20 * 20
        pos = torch.arange(n_show).view(-1, 20).numpy()
        plots.save_grids(run.file("samples.png"), [("clean", holdout.cpu().numpy()),
                                                   (f"perturbed ({cfg.perturb})", val_in.cpu().numpy()),
                                                   ("denoised", model(val_in).cpu().numpy())], pos)
    plots.learning_curves(run.file("curves.png"), run.metrics(), ["train_loss", "val_mse"], "denoiser")
    log.info("denoiser: held-out MSE %.4f (perturbed input %.4f)", res["val_mse_denoised"], res["val_mse_perturbed"])
    run.finish(res)
    ctx.close()
    return res


def load_denoiser(path, device):
    """A trained, frozen U-Net from a denoiser run directory or checkpoint file."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint_best.pt")
    ckpt = checkpoint.load(path)
    cfg = ckpt.get("config", {})
    if cfg.get("stage") != "denoise":
        raise UserError(f"{path}: not a denoiser checkpoint (stage {cfg.get('stage')!r})")
    # as it was made: checkpoints from before --unet-layout existed hold the pre-activation layout
    made = from_saved(cfg)
    model = make_unet(made.unet_width, made.unet_dropout, made.unet_layout)
    checkpoint.load_model_state(model, ckpt["model"], path)
    return freeze(model.to(device)), cfg


# ---------------------------------------------------------------- predictors

def l2_params(f, scope):
    """The tensors λ Σ‖W‖² sums over: `nonbias` (the authors': every parameter but biases, so
    BatchNorm scales too) or `weights` (matrices and embeddings only)."""
    return nonbias_params(f) if scope == "nonbias" else weight_params(f)


@torch.no_grad()
def spread(images):
    """Mean over images of the per-image pixel std: ~0.9 for crisp glyphs, small for gray blur."""
    return images.flatten(1).std(dim=1).mean().item()


@torch.no_grad()
def stretch(images):
    """Each image's pixels mapped linearly onto [-1, 1]: makes the shape of a near-constant (gray) base
    output visible in a picture; its spread is reported separately."""
    lo = images.amin(dim=(1, 2, 3), keepdim=True)
    hi = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - lo) / (hi - lo).clamp_min(1e-8) * 2 - 1


# Per test pair: its font and character and the MSE of f(x) and Π(f(x)). Every model of a split is tested
# on the same pairs, so two models' per-pair differences give a paired CI over the test pairs (report.py).
PAIR_RECORDS = "eval_test.jsonl"


@torch.no_grad()
def write_pair_records(path, split, base, den):
    per = lambda out: [float(f"{v:.6g}") for v in ((out - split.image) ** 2).flatten(1).mean(dim=1).tolist()]  # noqa: E731
    rows = zip(split.font.tolist(), split.char.tolist(), per(base), per(den))
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.writelines(json.dumps({"font": f, "char": c, "mse_base": b, "mse_denoised": d}) + "\n"
                      for f, c, b, d in rows)


def predictor_updates(cfg):
    """A predictor run's budget in updates: --max-update when set, else its epochs' updates."""
    return cfg["max_update"] or cfg["max_epoch"] * -(-cfg["n_train"] // cfg["batch_size"])


def train_predictor(args):
    """Direct (MSE of f(x)) or Composed (MSE of Π(f(x)) + λ Σ‖W‖² over f's parameters). `args`: parse()'s
    (config, overwrite, extend)."""
    # --extend: the budget may grow (Adam at a constant learning rate: no step depends on the budget)
    cfg, run, ctx, extending = _open(args, extend=(predictor_updates, (PAIR_RECORDS,)) if args.extend else None)
    done = _finished(run, ctx)
    if done is not None:
        return done
    t0 = time.time()
    device = ctx.device
    try:
        denoiser, dcfg = load_denoiser(cfg.denoiser, device)
        other_data = dcfg.get("data") and os.path.abspath(dcfg["data"]) != os.path.abspath(cfg.data)
        if dcfg.get("data_seed") != cfg.data_seed or other_data:
            raise UserError(f"{cfg.denoiser}: denoiser was trained on another split "
                            f"(data {dcfg.get('data')}, data seed {dcfg.get('data_seed')}); its unlabeled set could "
                            "overlap this test set")
        seed_everything(cfg.seed)
        splits = data.load_labeled(cfg.data, cfg.data_seed, n_train=cfg.n_train)
    except Exception:
        ctx.close()
        raise
    _begin(run, ctx, extending)
    tr, va, te = (splits[k].to(device) for k in ("train", "val", "test"))
    log.info("%s: %d train / %d val / %d test pairs (dropout %g, λ %g over %s, BatchNorm eps %g)", cfg.method,
             len(tr), len(va), len(te), cfg.dropout, cfg.l2, cfg.l2_scope, cfg.bn_eps)
    f = MLPGenerator(n_fonts=100, image_size=splits["info"]["image_size"], dropout=cfg.dropout,
                     bn_eps=cfg.bn_eps).to(device)
    # Composed trains through the frozen Π computed by FrozenUNet (same weights and state-dict keys, the same
    # function up to float rounding, faster: models.py); validation and evaluation below call Π as it is
    fast_pi = FrozenUNet(denoiser, channels_last=True) if getattr(denoiser, "layout", None) == "authors" else denoiser
    model = ctx.wrap(Composed(f, fast_pi) if cfg.method == "composed" else f)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _adam(params, cfg, device)
    penalized = l2_params(f, cfg.l2_scope)
    norm_params = nonbias_params(f)  # the reported norm: one definition for every run

    def step(idx):
        # Composed: the MSE of Π(f(x)) + λ·Σ‖W‖² (core/objective.py); Direct: the same with f(x) alone
        loss, mse = composed_mse(model(tr.font[idx], tr.char[idx]), tr.image[idx], penalized, cfg.l2)
        return loss, len(idx), {"mse": mse.detach()}

    def predict(split):
        base = f(split.font, split.char)
        return base, denoiser(base)

    def validate():
        base, den = predict(va)
        mse_base, mse_den = F.mse_loss(base, va.image).item(), F.mse_loss(den, va.image).item()
        return {"val_mse": mse_den if cfg.method == "composed" else mse_base,
                "val_mse_base": mse_base, "val_mse_denoised": mse_den,
                "weight_norm": l2_penalty(norm_params).sqrt().item(), "val_base_spread": spread(base)}

    flops = 3 * forward_flops(f, tr.font, tr.char)
    if cfg.method == "composed":
        # The frozen U-Net costs a forward and an input-gradient backward (no weight gradients).
        flops += 2 * forward_flops(denoiser, tr.image[:1])
    # The budget: --max-update updates when given (the same number at every labeled size: the cpu preset's
    # Composed, whose progress is per update: the L2 penalty shrinks f by a step each update), else
    # --max-epoch epochs (Direct: it overfits per pass over the data); imggen/README.md's budget probes.
    steps_per_epoch = -(-len(tr) // cfg.batch_size)
    max_epoch = -(-cfg.max_update // steps_per_epoch) if cfg.max_update else cfg.max_epoch
    summary = fit(run, model, opt, _batches(len(tr), cfg.batch_size, device, ctx), step, validate,
                  max_epoch=max_epoch, best_metric="val_mse", save_interval=cfg.save_interval,
                  log_interval=cfg.log_interval, flops_per_item=flops, device=device, ddp=ctx,
                  max_updates=cfg.max_update or 0, precision_name=cfg.precision,
                  save_every_s=CHECKPOINT_EVERY_S.get(cfg.preset, 60.0))
    if not ctx.is_main:
        return ctx.close()
    model = distributed.unwrap(model)
    load_best(run, model)
    model.eval()
    with torch.no_grad():
        base, den = predict(te)
        vb, vd = predict(va)
        res = {"method": cfg.method, "variant": cfg.variant,
               "test_mse_base": F.mse_loss(base, te.image).item(),
               "test_mse_denoised": F.mse_loss(den, te.image).item(),
               "val_mse_base": F.mse_loss(vb, va.image).item(), "val_mse_denoised": F.mse_loss(vd, va.image).item(),
               # f's norm over every non-bias parameter (the authors' L2 set), and over matrices only
               "weight_norm": l2_penalty(norm_params).sqrt().item(),
               "weight_norm_matrices": l2_penalty(weight_params(f)).sqrt().item(),
               # how far f's output is from gray: per-image pixel std (the truth's for scale)
               "test_spread_base": spread(base), "test_spread_denoised": spread(den),
               "test_spread_truth": spread(te.image),
               **splits["info"], **summary,
               "denoiser": {k: dcfg.get(k) for k in ("run_dir", "perturb", "blur_max", "contrast",
                                                     "unlabeled_fonts", "unet_width", "unet_layout")},
               "wall_s": time.time() - t0 + summary["resumed_train_s"]}
        pos = plots.grid_pairs(te.font.cpu().numpy(), te.char.cpu().numpy())
        plots.save_grids(run.file("samples.png"), [
            ("ground truth (test pairs)", te.image.cpu().numpy(), "truth"),
            (f"{cfg.method}: base predictor f(x)", base.cpu().numpy(), "base"),
            (f"{cfg.method}: denoised {'Pi(f(x))' if cfg.method == 'composed' else 'Pi(f(x)), post hoc'}",
             den.cpu().numpy(), "denoised"),
            (f"{cfg.method}: base predictor f(x), each image stretched to the full range", stretch(base).cpu().numpy(),
             "base_stretched")],
            pos)
    write_pair_records(run.file(PAIR_RECORDS), te, base, den)
    plots.learning_curves(run.file("curves.png"), run.metrics(),
                          ["train_mse", "val_mse_base", "val_mse_denoised"], f"{cfg.method}, {len(tr)} labeled")
    log.info("%s: test MSE f(x) %.4f, Π(f(x)) %.4f (best epoch %d; ‖f‖ %.1f, spread of f(x) %.3f)", cfg.method,
             res["test_mse_base"], res["test_mse_denoised"], res["best_epoch"], res["weight_norm"],
             res["test_spread_base"])
    run.finish(res)
    ctx.close()
    return res

