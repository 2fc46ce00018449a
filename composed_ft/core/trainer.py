"""The one training loop every stage of every experiment uses.

The caller supplies what differs between stages as three functions:
    batches(epoch)   -> iterable of batches for that epoch
    step(batch)      -> (loss, n_items, {extra scalars}); the loss is backpropagated here
    validate()       -> {metric: value} computed on the validation set
The loop owns what must be identical everywhere: gradient accumulation, the LR schedule, gradient
clipping, checkpoint/resume (model, optimizer, scheduler and every RNG state, so a killed run ends
with the same numbers as an uninterrupted one), best-checkpoint selection, metrics.jsonl, and a
throughput line with achieved FLOP/s and the fraction of the measured GEMM peak ("MFU").

On a GPU the loop must not wait for the device between steps: the logged sums of a step's scalars stay
on the device (added in float64, the same additions as Python floats, so a CPU run's metrics are
unchanged) and are read once per epoch; the step runs under the precision's autocast (core.precision).
Each epoch row also times what a projection of a long run needs (scripts/gpu_check.sh): `update_s`,
seconds per update once warm (the first one or two updates of the epoch left out), and the seconds of
the epoch's batch list (`setup_s`), validation (`val_s`) and checkpoint writing (`save_s`).
"""
import logging
import math
import os
import time

import torch

from . import checkpoint, precision
from .distributed import unwrap
from .perf import gemm_peak_flops
from .progress import progress
from .seed import rng_state, set_rng_state

log = logging.getLogger(__name__)


def fit(run, model, optimizer, batches, step, validate, *, max_epoch, scheduler=None, update_freq=1,
        clip_norm=0.0, best_metric="val_loss", best_mode="min", save_interval=1, log_interval=1,
        flops_per_item=None, device=torch.device("cpu"), max_updates=0, ddp=None, precision_name="fp32",
        also_best=(), save_every_updates=0, save_every_s=0.0):
    """Train until max_epoch (or max_updates) epochs; returns {"best": value, "best_epoch": epoch}.

    best_mode: "min" or "max" of val[best_metric] picks checkpoint_best.pt; "last" makes it the last
    epoch's weights (best_metric is then only logged).
    flops_per_item: forward+backward FLOPs per item counted by step() (e.g. per example or token),
    used only for the throughput log. ddp: optional composed_ft.core.distributed context; only its
    rank 0 writes logs and checkpoints. precision_name: core.precision's (bf16 | tf32 | fp32; CUDA only).
    also_best: further validation metrics (lower is better) whose best epoch is kept too, as
    checkpoint_best_<metric>.pt (a second selection rule of the same run, e.g. Composed by validation CE).
    save_every_updates / save_every_s: checkpoints by updates or by time instead of by epoch, for runs whose
    epochs are a few updates long (imggen: 2 updates at 500 labels, where writing a best checkpoint at every
    improved epoch took 12% of the run). With either set, checkpoint_last.pt is written at the end of the
    first epoch at least that many updates (or seconds) after the previous one, and at the end; an improved
    epoch's weights are kept in memory and written with it (checkpoint_best*.pt before checkpoint_last.pt, so
    a resumed run's record of its best epoch always has its weights on disk). save_interval is then unused.
    Validation, the metrics rows and the best-epoch choice stay per epoch, and resuming stays exact: every
    checkpoint holds the whole state at an epoch's end."""
    is_main = ddp is None or ddp.is_main
    last_path, best_path = run.file("checkpoint_last.pt"), run.file("checkpoint_best.pt")
    sign = -1.0 if best_mode == "max" else 1.0
    state = {"epoch": 0, "updates": 0, "best": math.inf, "best_epoch": 0, "n_metrics": 0,
             "also_best": {m: [math.inf, 0] for m in also_best}}
    if os.path.exists(last_path):
        ckpt = checkpoint.load(last_path)
        checkpoint.load_model_state(unwrap(model), ckpt["model"], last_path)
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        state.update(ckpt["trainer"])
        if is_main:
            run.truncate_metrics(state["n_metrics"])
        log.info("%s: resumed from epoch %d (best %s %.5g at epoch %d)", run.path, state["epoch"],
                 best_metric, sign * state["best"], state["best_epoch"])

    # training + validation seconds of the processes before this one (a resumed run's wall time
    # counts them too: results' wall_s = this process's time + resumed_train_s)
    resumed_train_s = state.setdefault("train_s", 0.0)
    precision.setup(device, precision_name)
    peak = gemm_peak_flops(device.type) if flops_per_item else None
    params = [p for p in model.parameters() if p.requires_grad]
    t_run, save_s = time.perf_counter(), 0.0
    deferred = bool(save_every_updates or save_every_s)
    pending = {}  # path -> the state of a best checkpoint not written yet (deferred saving)
    last_saved = (state["updates"], time.perf_counter())
    while state["epoch"] < max_epoch and not (max_updates and state["updates"] >= max_updates):
        epoch = state["epoch"] + 1
        model.train()
        t0, items, sums, n_steps, updates_before = time.perf_counter(), 0, {}, 0, state["updates"]
        optimizer.zero_grad(set_to_none=True)
        batch_list = list(batches(epoch))
        marks = []  # (updates this epoch, time) after the first two updates: where update_s starts
        setup_s = time.perf_counter() - t0
        for i, batch in enumerate(progress(batch_list, desc=f"epoch {epoch}")):
            with precision.autocast(device, precision_name):
                loss, n, extra = step(batch)
            (loss / update_freq).backward()
            items += n
            n_steps += 1
            for k, v in {"loss": loss.detach(), **extra}.items():
                _add(sums, k, v)
            if (i + 1) % update_freq == 0 or i + 1 == len(batch_list):
                if ddp is not None and ddp.enabled and unwrap(model) is model:
                    ddp.average_gradients(params)  # not DDP-wrapped: average here, as DDP would
                if clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, clip_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if scheduler is not None:
                    scheduler.step()
                state["updates"] += 1
                if len(marks) < 2:
                    _sync(device)
                    marks.append((len(marks) + 1, time.perf_counter()))
                if max_updates and state["updates"] >= max_updates:
                    break
        _sync(device)
        t_end = time.perf_counter()
        dt = t_end - t0
        if ddp is not None and ddp.enabled:
            items *= ddp.world_size  # every rank processed an equal share of each global batch
        model.eval()
        t_val = time.perf_counter()
        with torch.no_grad():
            val = validate()
        _sync(device)
        row = {"epoch": epoch, "updates": state["updates"], "lr": optimizer.param_groups[0]["lr"],
               **{f"train_{k}": _value(v) / max(n_steps, 1) for k, v in sums.items()}, **val,
               "items_per_s": items / dt, "epoch_s": dt, "setup_s": setup_s, "val_s": time.perf_counter() - t_val}
        update_s = _steady(marks, t_end, state["updates"] - updates_before)
        if update_s is not None:
            row["update_s"] = update_s
        if device.type == "cuda":
            row["cuda_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        if flops_per_item:
            row["gflops"] = flops_per_item * items / dt / 1e9
            row["mfu"] = row["gflops"] * 1e9 / peak
        # best_mode "last": every epoch replaces the best, so checkpoint_best.pt is the last epoch's weights
        improved = best_mode == "last" or sign * val[best_metric] < state["best"]
        if improved:
            state["best"], state["best_epoch"] = sign * val[best_metric], epoch
        also_improved = [m for m in also_best if val[m] < state["also_best"][m][0]]
        for m in also_improved:
            state["also_best"][m] = [val[m], epoch]
        state["epoch"] = epoch
        state["train_s"] += time.perf_counter() - t0
        if is_main:
            t_save = time.perf_counter()
            run.log_metrics(**row)
            state["n_metrics"] = run.n_metrics()
            weights = (lambda: _snapshot(unwrap(model))) if deferred else unwrap(model).state_dict
            if improved:
                pending[best_path] = {"model": weights(), "epoch": epoch,
                                      best_metric: val[best_metric], "config": run.config}
            for m in also_improved:
                pending[run.file(f"checkpoint_best_{m}.pt")] = {"model": weights(), "epoch": epoch,
                                                               m: val[m], "config": run.config}
            done = epoch >= max_epoch or (max_updates and state["updates"] >= max_updates)
            if deferred:
                save_last = done or (save_every_updates and state["updates"] - last_saved[0] >= save_every_updates) \
                    or (save_every_s and time.perf_counter() - last_saved[1] >= save_every_s)
            else:
                save_last = epoch % save_interval == 0 or done
            if save_last or not deferred:
                for path, payload in pending.items():
                    checkpoint.save(path, payload)
                pending.clear()
            if save_last:
                checkpoint.save(last_path, {
                    "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "rng": rng_state(), "trainer": dict(state), "config": run.config})
                last_saved = (state["updates"], time.perf_counter())
            save_s += time.perf_counter() - t_save
            if epoch % log_interval == 0 or done or epoch == 1:
                msg = (f"epoch {epoch:4d} | loss {row['train_loss']:.4f} | {best_metric} {val[best_metric]:.5f}"
                       f"{' *' if improved else ''} | {row['items_per_s']:.0f} items/s")
                if flops_per_item:
                    msg += f" | {row['gflops']:.1f} GFLOP/s, MFU {100 * row['mfu']:.0f}% of measured GEMM peak"
                log.info(msg)
    if ddp is not None:
        ddp.barrier()  # checkpoints written by rank 0 are complete before anyone reads them
    log.info("%s: done, %d epochs in %.0f s, best %s %.5g at epoch %d", run.path, state["epoch"],
             time.perf_counter() - t_run, best_metric, sign * state["best"], state["best_epoch"])
    also = {k: v for m, (b, e) in state["also_best"].items() for k, v in ((f"best_{m}", b), (f"best_{m}_epoch", e))}
    return {"best": sign * state["best"], "best_epoch": state["best_epoch"], **also, "epochs": state["epoch"],
            "updates": state["updates"], "train_s": state["train_s"], "resumed_train_s": resumed_train_s,
            "save_s": save_s}


def _snapshot(model):
    """The model's state dict as it is now: a copy of each tensor (held until a deferred checkpoint is written;
    the live state dict's tensors change with the next update)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _sync(device):
    """Wait for the device's queued work (for timing; a no-op on a CPU, whose work is done on return)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _add(sums, k, v):
    """sums[k] += v without waiting for the device: a tensor is added on its device in float64 (exactly
    the addition a Python float does, so the logged means equal the old float(v) sums bit for bit)."""
    if torch.is_tensor(v):
        v = v.detach().to(torch.float64)
        sums[k] = (sums[k] if k in sums else torch.zeros((), dtype=torch.float64, device=v.device)) + v
    else:
        sums[k] = sums.get(k, 0.0) + float(v)


def _value(v):
    return float(v) if torch.is_tensor(v) else v


def _steady(marks, t_end, n_updates):
    """Seconds per update of an epoch once warm: from the end of its second update (its first when the
    epoch has fewer than four) to the end of its last; None with a single update."""
    if n_updates >= 4 and len(marks) >= 2:
        (k, t), n = marks[1], n_updates
    elif n_updates >= 2 and marks:
        (k, t), n = marks[0], n_updates
    else:
        return None
    return (t_end - t) / (n - k)


def load_best(run, model):
    """Load checkpoint_best.pt into model (for final evaluation)."""
    path = run.file("checkpoint_best.pt")
    ckpt = checkpoint.load(path)
    checkpoint.load_model_state(unwrap(model), ckpt["model"], path)
    return ckpt
