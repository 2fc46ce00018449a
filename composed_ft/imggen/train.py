"""The stages of the font experiment: train the denoiser Π; train a predictor f (Direct, or
Composed through the frozen Π with an L2 penalty on f); evaluate f and Π∘f on the test set.

Each stage is one run directory (composed_ft.core.runs) and one call of the shared training loop
(composed_ft.core.trainer.fit)."""
import logging
import os
import time

import torch
import torch.nn.functional as F

from ..core import checkpoint, distributed
from ..core.compose import Composed, freeze, l2_penalty, weight_params
from ..core.errors import UserError
from ..core.perf import forward_flops
from ..core.runs import Run
from ..core.seed import seed_everything
from ..core.trainer import fit, load_best
from . import data, perturbations, plots
from .models import MLPGenerator, UNet

log = logging.getLogger(__name__)


def _batches(n, batch_size, device, ctx):
    """Shuffled index batches for one epoch (torch RNG, so resume replays the same order); under
    torchrun every rank draws the same permutation and keeps its shard of each global batch."""
    def make(epoch):
        perm = torch.randperm(n)
        return [ctx.shard(perm[i:i + batch_size]).to(device) for i in range(0, n, batch_size)]
    return make


def _start(args):
    """The run directory (rank 0 writes it; other ranks wait) and the process-group context."""
    ctx = distributed.setup(args.device)
    run = Run(args.run_dir, vars_config(args))
    if ctx.is_main:
        run.start()
    ctx.barrier()
    return run, ctx


def _adam(params, args):
    return torch.optim.Adam(params, lr=args.lr, betas=(args.beta1, args.beta2))


@torch.no_grad()
def _fixed_noise(fn, x, seed):
    """Perturb a validation set once, with its own seed, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(x)


# ---------------------------------------------------------------- denoiser

def denoise(args):
    run, ctx = _start(args)
    if run.finished:
        log.info("%s: finished already, nothing to do", run.path)
        return run.results()
    t0 = time.time()
    device = ctx.device
    seed_everything(args.seed)
    clean, holdout = data.load_unlabeled(args.data, args.data_seed, args.unlabeled_fonts)
    clean, holdout = clean.to(device), holdout.to(device)
    perturb = perturbations.make(args.perturb, args.blur_max, args.contrast)
    val_in = _fixed_noise(perturb, holdout, args.seed + 12345)
    log.info("denoiser data: %d unlabeled images (+%d held out), perturbation %s", len(clean), len(holdout),
             args.perturb)
    model = ctx.wrap(UNet(args.unet_width, args.unet_dropout).to(device))
    opt = _adam(model.parameters(), args)

    def step(idx):
        y = clean[idx]
        with torch.no_grad():
            x = perturb(y)
        return F.mse_loss(model(x), y), len(idx), {}

    def validate():
        return {"val_mse": F.mse_loss(model(val_in), holdout).item()}

    flops = 3 * forward_flops(distributed.unwrap(model), val_in)
    # Small unlabeled sets (the 100-font ablation) get more epochs: --min-updates sets the floor.
    steps_per_epoch = -(-len(clean) // args.batch_size)
    max_epoch = max(args.max_epoch, -(-args.min_updates // steps_per_epoch))
    summary = fit(run, model, opt, _batches(len(clean), args.batch_size, device, ctx), step, validate,
                  max_epoch=max_epoch, best_metric="val_mse", save_interval=1, log_interval=1,
                  flops_per_item=flops, device=device, ddp=ctx)
    if not ctx.is_main:
        return ctx.close()
    model = distributed.unwrap(model)
    load_best(run, model)
    model.eval()
    with torch.no_grad():
        res = {"val_mse_denoised": F.mse_loss(model(val_in), holdout).item(),
               "val_mse_perturbed": F.mse_loss(val_in, holdout).item(),
               "n_unlabeled": len(clean), "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
               "wall_s": time.time() - t0 + summary["resumed_train_s"]}
        n_show = min(200, len(holdout)) // 20 * 20
        pos = torch.arange(n_show).view(-1, 20).numpy()
        plots.save_grids(run.file("samples.png"), [("clean", holdout.cpu().numpy()),
                                                   (f"perturbed ({args.perturb})", val_in.cpu().numpy()),
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
    model = UNet(cfg["unet_width"], cfg["unet_dropout"])
    checkpoint.load_model_state(model, ckpt["model"], path)
    return freeze(model.to(device)), cfg


# ---------------------------------------------------------------- predictors

def train_predictor(args):
    """Direct (MSE of f(x)) or Composed (MSE of Π(f(x)) + λ Σ‖W‖² over f's weights)."""
    run, ctx = _start(args)
    if run.finished:
        log.info("%s: finished already, nothing to do", run.path)
        return run.results()
    t0 = time.time()
    device = ctx.device
    denoiser, dcfg = load_denoiser(args.denoiser, device)
    if dcfg.get("data_seed") != args.data_seed or dcfg.get("data") and os.path.abspath(dcfg["data"]) != os.path.abspath(args.data):
        raise UserError(f"{args.denoiser}: denoiser was trained on another split "
                        f"(data {dcfg.get('data')}, data seed {dcfg.get('data_seed')}); its unlabeled set could overlap this test set")
    seed_everything(args.seed)
    splits = data.load_labeled(args.data, args.data_seed, n_train=args.n_train)
    tr, va, te = (splits[k].to(device) for k in ("train", "val", "test"))
    log.info("%s: %d train / %d val / %d test pairs", args.method, len(tr), len(va), len(te))
    f = MLPGenerator(n_fonts=100, image_size=splits["info"]["image_size"], dropout=args.dropout).to(device)
    model = ctx.wrap(Composed(f, denoiser) if args.method == "composed" else f)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _adam(params, args)
    l2_params = weight_params(f)

    def step(idx):
        out = model(tr.font[idx], tr.char[idx])
        mse = F.mse_loss(out, tr.image[idx])
        loss = mse + args.l2 * l2_penalty(l2_params) if args.l2 > 0 else mse
        return loss, len(idx), {"mse": mse.detach()}

    def predict(split):
        base = f(split.font, split.char)
        return base, denoiser(base)

    def validate():
        base, den = predict(va)
        mse_base, mse_den = F.mse_loss(base, va.image).item(), F.mse_loss(den, va.image).item()
        return {"val_mse": mse_den if args.method == "composed" else mse_base,
                "val_mse_base": mse_base, "val_mse_denoised": mse_den}

    flops = 3 * forward_flops(f, tr.font, tr.char)
    if args.method == "composed":
        # The frozen U-Net costs a forward and an input-gradient backward (no weight gradients).
        flops += 2 * forward_flops(denoiser, tr.image[:1])
    summary = fit(run, model, opt, _batches(len(tr), args.batch_size, device, ctx), step, validate,
                  max_epoch=args.max_epoch, best_metric="val_mse", save_interval=args.save_interval,
                  log_interval=args.log_interval, flops_per_item=flops, device=device, ddp=ctx)
    if not ctx.is_main:
        return ctx.close()
    model = distributed.unwrap(model)
    load_best(run, model)
    model.eval()
    with torch.no_grad():
        base, den = predict(te)
        vb, vd = predict(va)
        res = {"method": args.method, "test_mse_base": F.mse_loss(base, te.image).item(),
               "test_mse_denoised": F.mse_loss(den, te.image).item(),
               "val_mse_base": F.mse_loss(vb, va.image).item(), "val_mse_denoised": F.mse_loss(vd, va.image).item(),
               "weight_norm": l2_penalty(l2_params).sqrt().item(), **splits["info"], **summary,
               "denoiser": {k: dcfg.get(k) for k in ("run_dir", "perturb", "blur_max", "contrast",
                                                     "unlabeled_fonts", "unet_width")},
               "wall_s": time.time() - t0 + summary["resumed_train_s"]}
        pos = plots.grid_pairs(te.font.cpu().numpy(), te.char.cpu().numpy())
        plots.save_grids(run.file("samples.png"), [
            ("ground truth (test pairs)", te.image.cpu().numpy()),
            (f"{args.method}: base predictor f(x)", base.cpu().numpy()),
            (f"{args.method}: denoised {'Pi(f(x))' if args.method == 'composed' else 'Pi(f(x)), post hoc'}", den.cpu().numpy())],
            pos)
    plots.learning_curves(run.file("curves.png"), run.metrics(),
                          ["train_mse", "val_mse_base", "val_mse_denoised"], f"{args.method}, {len(tr)} labeled")
    log.info("%s: test MSE f(x) %.4f, Π(f(x)) %.4f (best epoch %d)", args.method, res["test_mse_base"],
             res["test_mse_denoised"], res["best_epoch"])
    run.finish(res)
    ctx.close()
    return res


def vars_config(args):
    cfg = {k: v for k, v in vars(args).items() if k not in ("func",)}
    return cfg
