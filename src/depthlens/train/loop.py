"""The training loop: ``train(config) -> Path``, one function that reads top to bottom.

One process, or N under ``torchrun`` (DistributedDataParallel: gloo on CPU, NCCL on
CUDA), with the same code and the same config: ``batch_size`` is global and every
process reads its own share of each step's samples (``data.StepSampler``). Rank 0
alone logs, validates, checkpoints and exports.

Run layout under ``config.output_dir``::

    config.yaml        the config as run (for people; checkpoints hold their own copy)
    checkpoint.pt      the latest checkpoint, replaced atomically every checkpoint_every
    log.jsonl          one JSON object per logged step: loss terms, lr, images/s, val
    export/            the final weights in the bundled format (model.safetensors + json)

Determinism: sample ``k`` of the data stream depends only on ``(seed, k)``, the
learning rate only on the step, and the sampled losses draw from a generator seeded
by the step; so a run resumed from a checkpoint computes the same losses, bit for
bit on the same machine, as the run that was never interrupted.
"""

from __future__ import annotations

import copy
import json
import math
import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import save
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from depthlens.errors import UsageError
from depthlens.geometry.align import normalize_median_mad
from depthlens.io.depth_files import atomic_write, write_bytes
from depthlens.models.midas_small import MidasSmallConfig, MidasSmallNet, build_network
from depthlens.models.weights import (
    CONVERTED_CONFIG,
    CONVERTED_WEIGHTS,
    load_strict,
    read_state_dict,
)
from depthlens.train.config import TrainConfig, config_from_dict, config_to_dict, dump_config
from depthlens.train.data import StepSampler, build_dataset, prerender_synth
from depthlens.train.losses import (
    gradient_matching_loss,
    scale_anchor_loss,
    silog_loss,
    ssi_mse_loss,
    trimmed_mae_loss,
    virtual_normal_loss,
)
from depthlens.train.validate import evaluate_relative

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
EXPORT = "export"
CHECKPOINT_FORMAT = "depthlens-train"
# Metric training reads the network output as canonical depth in meters; the log in
# SILog needs it positive, so it is clamped here (a millimetre at the canonical camera).
MIN_METRIC_DEPTH = 1e-3


def train(
    config: TrainConfig, resume: bool | Literal["auto"] = False, stop_at: int | None = None
) -> Path:
    """Train ``config``; returns the export folder, or the checkpoint when stopped early.

    ``resume`` continues from ``output_dir/checkpoint.pt`` (same step, optimiser, EMA
    and data position); ``"auto"`` continues when that checkpoint exists and starts
    otherwise, because an elastic torchrun restarts every process with the arguments
    it first had. ``stop_at`` ends the session after that step with a checkpoint but
    no export, for training in time-boxed pieces.
    """
    # -- Processes: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK for each of them.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    # Before any rendezvous, so that a restart on fewer machines fails at once.
    if config.batch_size % world:
        raise UsageError(
            f"batch_size {config.batch_size} (global, split over the processes) does not "
            f"divide by the {world} processes of this run; launch a number that divides it."
        )
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank = dist.get_rank()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local_rank}" if backend == "nccl" else "cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        rank = 0
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    master = rank == 0
    console = Console(stderr=True, highlight=False, quiet=not master)
    if (
        int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0
        and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    ):
        # Said now, not after the first failure: torchrun (seen with torch 2.13) keeps
        # its rendezvous store across restarts, and a restarted group reads the previous
        # group's addresses from it and fails to connect (pytorch/pytorch#135712).
        console.print(
            "Note: torchrun restarts reconnect only with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
            "in the launcher's environment; see docs/distributed-training.md."
        )
    try:
        return _train(config, resume, stop_at, rank, world, device, console)
    finally:
        if distributed:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    resume: bool | Literal["auto"],
    stop_at: int | None,
    rank: int,
    world: int,
    device: torch.device,
    console: Console,
) -> Path:
    master = rank == 0
    distributed = world > 1
    out = Path(config.output_dir)
    checkpoint_path = out / CHECKPOINT
    # Every process must see the same run folder (shared storage across machines), so
    # they all make the same choice between starting and resuming; a folder that only
    # some of them see is refused rather than trained from two different states.
    found = checkpoint_path.is_file()
    if distributed:
        seen = torch.tensor([int(found)], device=device)
        dist.all_reduce(seen)
        if 0 < int(seen) < world:
            raise UsageError(
                f"Only {int(seen)} of {world} processes see {checkpoint_path}; output_dir "
                "must be one folder that every machine shares."
            )
    if resume == "auto":
        resume = found
    if resume and not found:
        raise UsageError(f"There is no checkpoint at {checkpoint_path} to resume from.")
    if not resume and checkpoint_path.exists():
        raise UsageError(
            f"{out} already holds a run; pass --resume to continue it or --out for a new one."
        )
    last_step = config.steps if stop_at is None else min(stop_at, config.steps)

    # -- Seed. The model is initialised identically on every rank (DDP also broadcasts
    # rank 0's weights); the data and the sampled losses have their own seeded streams.
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    # -- Model, EMA copy, optimiser. As nanoGPT: no weight decay on 1-D tensors
    # (biases, BatchNorm scales), which decay would only pull towards zero.
    network_config = config.model.network_config()
    raw_model = build_network(network_config).train().to(device)
    if config.channels_last:
        raw_model = raw_model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if config.init_from and not resume:
        load_strict(raw_model, initial_weights(config.init_from), config.init_from)
        if master:
            console.print(f"Starting from the weights in {config.init_from}.")
    ema = copy.deepcopy(raw_model).eval().requires_grad_(False) if config.ema_decay else None
    params = [p for p in raw_model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [
        {"params": [p for p in params if p.ndim >= 2]},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=config.optimizer.lr,
        betas=config.optimizer.betas,
        weight_decay=config.optimizer.weight_decay,
        # One fused kernel for all tensors: 7x faster than the per-tensor loop on CPU.
        fused=device.type in ("cpu", "cuda"),
    )

    # -- Resume: weights, optimiser moments, EMA, step and RNG from the checkpoint.
    step = 0
    if resume:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved = config_from_dict(checkpoint["config"], f"the config inside {checkpoint_path}")
        if saved.model != config.model:
            raise UsageError(
                f"The model in {checkpoint_path} ({saved.model}) differs from the config's "
                f"({config.model}); resume with the config the run started with."
            )
        raw_model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if ema is not None:
            ema.load_state_dict(checkpoint["ema"] or checkpoint["model"])
        step = int(checkpoint["step"])
        if master:
            _set_rng_state(checkpoint["rng"])
            console.print(f"Resuming from step {step} of {config.steps} ({checkpoint_path}).")
        del checkpoint
        if distributed:
            # A shared folder whose caches lag (NFS attribute caching) can hand two
            # machines two generations of the file: catch it before the states diverge.
            steps = torch.tensor([step, -step], device=device)
            dist.all_reduce(steps, op=dist.ReduceOp.MAX)
            if int(steps[0]) != -int(steps[1]):
                raise UsageError(
                    f"The processes read checkpoints of steps {-int(steps[1])} to "
                    f"{int(steps[0])} from {checkpoint_path}; output_dir must be one folder "
                    "that every machine sees alike."
                )
    model: nn.Module = raw_model
    if distributed:
        model = DistributedDataParallel(
            raw_model, device_ids=[device] if device.type == "cuda" else None
        )

    # -- Run folder and log. A resumed log is cut back to the checkpoint's step, so the
    # curve has no duplicate steps where the interrupted session ran past it, and loses
    # a line a killed process left half written. So does the temporary file of a
    # checkpoint write that a kill interrupted (atomic_write's ".NAME.*.tmp").
    log_path = out / LOG
    if master:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_config(config))
        for stale in out.glob(f".{CHECKPOINT}.*.tmp"):
            stale.unlink(missing_ok=True)
        if resume and log_path.exists():
            kept = [
                line for line in log_path.read_text().splitlines() if 0 <= _log_step(line) <= step
            ]
            log_path.write_text("".join(line + "\n" for line in kept))
        elif not resume:
            log_path.write_text("")

    # -- Data: pre-rendered synthetic scenes are rendered once, by rank 0, before the
    # loaders open them; every process then reads its own share of each step.
    if master:
        for index, entry in enumerate(config.data):
            if entry.kind == "synth" and entry.prerender > 0:
                prerender_synth(config, index, console)
    if distributed:
        dist.barrier()
    dataset = build_dataset(config)
    local_batch = config.batch_size // world
    loader = DataLoader(
        dataset,
        batch_size=local_batch,
        sampler=StepSampler(step, last_step, config.batch_size, rank, world),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init,
        # Forked workers inherit OpenCV's and OpenMP's thread pools mid-state and can
        # hang on their locks (cv2.setNumThreads never returns); forkserver and spawn
        # start workers from a clean process.
        multiprocessing_context=_worker_start_method() if config.num_workers else None,
    )
    validation_items = _validation_items(config) if master and config.validation.every else []

    # -- Mixed precision: bf16 autocast where the device runs it; losses stay float32.
    use_bf16 = config.bf16 and (
        device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    )

    # -- The loop.
    progress = Progress(
        TextColumn("[bold]train[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (master and console.is_terminal),
    )
    # images/s counts training time only: validation and checkpoints are "paused" time.
    window_start, window_steps, paused = time.perf_counter(), 0, 0.0
    log_terms: dict[str, torch.Tensor] = {}
    with progress:
        task = progress.add_task("", total=config.steps, completed=step)
        for batch in loader:
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            images = batch["image"]
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                prediction = model(images)
            loss, terms = compute_loss(prediction.float(), batch, config, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                if config.grad_clip > 0
                else torch.zeros(())
            )
            optimizer.step()
            if ema is not None:
                update_ema(ema, raw_model, config.ema_decay or 0.0, step)
            step += 1
            window_steps += 1
            for name, value in terms.items():  # tensors: no device sync until logged
                log_terms[name] = log_terms[name] + value if name in log_terms else value

            # Log (every rank takes part in the all-reduce of the loss terms) and
            # validate (rank 0, on the EMA weights when kept).
            validate_now = bool(config.validation.every) and (
                step % config.validation.every == 0 or step == config.steps
            )
            if step % config.log_every == 0 or step == last_step or validate_now:
                elapsed = time.perf_counter() - window_start - paused
                averaged = _average_over_ranks(
                    {k: float(v) / window_steps for k, v in log_terms.items()}, device, distributed
                )
                record: dict[str, Any] = {"step": step, **averaged}
                record["lr"] = lr
                record["grad_norm"] = float(grad_norm)
                record["images_per_s"] = window_steps * config.batch_size / max(elapsed, 1e-9)
                if master and validate_now:
                    validation_start = time.perf_counter()
                    metrics = evaluate_relative(
                        ema if ema is not None else raw_model,
                        validation_items,
                        config.validation.max_depth,
                        config.input_size,
                        output="depth" if config.metric.enabled else "disparity",
                    )
                    record.update({f"val_{k}": v for k, v in metrics.items()})
                    record["val_seconds"] = time.perf_counter() - validation_start
                if master:
                    with log_path.open("a") as log:
                        log.write(json.dumps(record) + "\n")
                    if not console.is_terminal:
                        console.print(_summary(record))
                progress.update(task, completed=step, description=f"loss {record['loss']:.4f}")
                window_start, window_steps, paused, log_terms = time.perf_counter(), 0, 0.0, {}

            # Checkpoint (rank 0 writes; the others wait so no one runs ahead of it).
            if step % config.checkpoint_every == 0 or step == last_step:
                checkpoint_start = time.perf_counter()
                if master:
                    save_checkpoint(checkpoint_path, raw_model, optimizer, ema, step, lr, config)
                if distributed:
                    dist.barrier()
                paused += time.perf_counter() - checkpoint_start
            progress.update(task, completed=step)

    if step < config.steps:
        console.print(f"Stopped at step {step} of {config.steps}; checkpoint {checkpoint_path}.")
        return checkpoint_path

    # -- Export the final weights (EMA when kept) in the bundled format.
    export_dir = out / EXPORT
    if master:
        final = ema if ema is not None else raw_model
        export_bundled(final, network_config, config, export_dir)
        console.print(f"Trained {config.steps} steps; weights exported to {export_dir}.")
        if not zoo_preset_matches(config.export_name, network_config):
            console.print(
                f"Note: the zoo's {config.export_name} is another network, so load this one "
                "with depthlens.train.loop.load_exported, not depthlens.load_model."
            )
    if distributed:
        dist.barrier()
    return export_dir


# --------------------------------------------------------------------------------------
# Pieces of the loop


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate of update ``step`` (0-based): linear warm-up from ``lr / warmup``
    to ``lr``, then a half cosine down to ``min_lr`` at the last step (nanoGPT's
    ``get_lr``). A pure function of the step, so the schedule needs no saved state."""
    peak, floor = config.optimizer.lr, config.schedule.min_lr
    warmup = config.schedule.warmup_steps
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return floor + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (peak - floor)


def compute_loss(
    prediction: torch.Tensor, batch: dict[str, torch.Tensor], config: TrainConfig, step: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted loss of a batch and its terms (detached), ``"loss"`` included.

    Relative training compares the (B, S, S) prediction with the target disparity up to
    scale and shift (MiDaS), sky included as zero disparity where the source says its
    invalid pixels are far (``invalid_is_far``); the gradient term matches gradients of
    the median/MAD-normalised maps, as MiDaS does alongside its trimmed loss. Metric training reads
    the prediction as canonical depth and compares it with the depth of the samples
    that have one (pseudo labels are relative and excluded by the config check).
    """
    weights = config.loss
    terms: dict[str, torch.Tensor] = {}
    if not config.metric.enabled:
        target, valid = batch["disparity"], batch["disparity_valid"]
        if weights.ssi_trimmed_mae or weights.gradient_matching:
            # Both terms compare the median/MAD-normalised maps: normalise once.
            pred_hat = normalize_median_mad(prediction, valid)
            target_hat = normalize_median_mad(target, valid)
        if weights.ssi_trimmed_mae:
            terms["ssi_trimmed_mae"] = trimmed_mae_loss(pred_hat, target_hat, valid)
        if weights.ssi_mse:
            terms["ssi_mse"] = ssi_mse_loss(prediction, target, valid)
        if weights.gradient_matching:
            terms["gradient_matching"] = gradient_matching_loss(
                pred_hat, target_hat, valid, scales=weights.gradient_scales, align=False
            )
        if weights.scale_anchor:
            terms["scale_anchor"] = scale_anchor_loss(prediction, valid)
    else:
        depth = prediction.clamp(min=MIN_METRIC_DEPTH)
        mask = batch["valid"] & batch["has_depth"][:, None, None]
        if weights.silog:
            terms["silog"] = silog_loss(depth, batch["depth"], mask)
        if weights.virtual_normal:
            # Triplets drawn from a generator seeded by the step, so a resumed run draws
            # the same ones as an uninterrupted run.
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            terms["virtual_normal"] = virtual_normal_loss(
                depth, batch["depth"], mask, batch["intrinsics"], generator=generator
            )
    loss = prediction.new_zeros(())
    for name, value in terms.items():
        loss = loss + getattr(weights, name) * value
    detached = {name: value.detach() for name, value in terms.items()}
    detached["loss"] = loss.detach()
    return loss, detached


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """``ema = d·ema + (1 − d)·model`` for parameters, with ``d = min(decay, (1 + n) /
    (10 + n))`` so early averages do not remember the random init for long; buffers
    (BatchNorm statistics) are copied."""
    d = min(decay, (1 + step) / (10 + step))
    for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
        averaged.lerp_(current, 1.0 - d)
    for averaged_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        averaged_buffer.copy_(buffer)


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: nn.Module | None,
    step: int,
    lr: float,
    config: TrainConfig,
) -> None:
    """Write everything a resumed run needs, atomically (temporary file, then rename).

    Holds only tensors and plain data, so ``torch.load(weights_only=True)`` reads it.
    The learning-rate schedule is a pure function of ``step`` and ``config``; ``lr`` is
    the last rate used, for people reading the file.
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "schedule": {"step": step, "lr": lr},
        "rng": _rng_state(),
        "config": config_to_dict(config),
    }
    atomic_write(path, lambda file: torch.save(state, file))


def initial_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The network weights ``init_from`` names: an export folder, a ``.safetensors``
    file, or a training checkpoint (its EMA weights when it kept them)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONVERTED_WEIGHTS
    if not path.is_file():
        raise UsageError(
            f"init_from names {path}, which does not exist; give an export folder, a "
            ".safetensors file or a checkpoint.pt."
        )
    if path.suffix == ".safetensors":
        return read_state_dict(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        return read_state_dict(path)
    return dict(checkpoint["ema"] or checkpoint["model"])


def load_checkpoint_config(path: str | Path) -> TrainConfig:
    """The config stored inside a checkpoint."""
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    return config_from_dict(checkpoint["config"], f"the config inside {path}")


def export_bundled(
    network: nn.Module, network_config: MidasSmallConfig, config: TrainConfig, folder: Path
) -> Path:
    """Write ``model.safetensors`` (float tensors in fp16) and ``depthlens.json``.

    The folder is what ``depthlens convert`` writes, so ``depthlens.load_model(folder)``
    loads it when ``config.export_name`` is a zoo row whose preset is this network;
    the JSON also holds the full network config, which :func:`load_exported` builds
    from for any other config. Each file is written atomically.
    """
    tensors = {
        k: (v.half() if v.is_floating_point() else v).detach().contiguous().cpu()
        for k, v in network.state_dict().items()
    }
    description = {
        "format": "depthlens",
        "version": 1,
        "model": config.export_name,
        "family": "midas_small",
        "kind": "metric" if config.metric.enabled else "relative_inverse",
        "network": _network_config_dict(network_config),
        "input_size": config.input_size,
        "canonical_focal": config.metric.focal if config.metric.canonical else None,
        "trained_steps": config.steps,
        "ema": config.ema_decay is not None,
    }
    write_bytes(folder / CONVERTED_WEIGHTS, save(tensors, metadata={"format": "pt"}))
    write_bytes(folder / CONVERTED_CONFIG, (json.dumps(description, indent=2) + "\n").encode())
    return folder


def zoo_preset_matches(name: str, network_config: MidasSmallConfig) -> bool:
    """Whether the zoo row ``name`` builds exactly this network (so that
    ``depthlens.load_model(export_folder)`` can load the export)."""
    from depthlens.models.midas_small import PRESETS
    from depthlens.models.registry import MODELS

    spec = MODELS.get(name)
    return (
        spec is not None
        and spec.family == "midas_small"
        and PRESETS.get(spec.variant) == network_config
    )


def load_exported(folder: str | Path) -> MidasSmallNet:
    """The network of an exported folder, built from its JSON and loaded strictly."""
    from depthlens.models.midas_small import EFFICIENTNET_LITE_STAGES, StageDef

    folder = Path(folder)
    description = json.loads((folder / CONVERTED_CONFIG).read_text())
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in description["network"].items()
    }
    stages = fields.pop("stages", None)
    fields["stages"] = (
        tuple(StageDef(**stage) for stage in stages)
        if stages is not None
        else EFFICIENTNET_LITE_STAGES
    )
    network_config = MidasSmallConfig(**fields)
    network = build_network(network_config)
    load_strict(network, read_state_dict(folder / CONVERTED_WEIGHTS), str(folder))
    return network


def _network_config_dict(network_config: MidasSmallConfig) -> dict[str, Any]:
    import dataclasses

    fields = dataclasses.asdict(network_config)
    fields["stages"] = [dict(stage) for stage in fields["stages"]]
    fields["level_ends"] = list(fields["level_ends"])
    return fields


def _validation_items(config: TrainConfig) -> list[Any]:
    """The held-out synthetic scenes, rendered once at the start."""
    from depthlens.synth.render import render_batch

    val = config.validation
    seeds = list(range(val.seeds[0], val.seeds[0] + val.images))
    kinds = list(val.kinds) if val.kinds is not None else None
    items: list[Any] = []
    for start in range(0, len(seeds), 8):
        items.extend(
            render_batch(
                seeds[start : start + 8], val.size[0], val.size[1], kinds=kinds, device="cpu"
            )
        )
    return items


def _average_over_ranks(
    values: dict[str, float], device: torch.device, distributed: bool
) -> dict[str, float]:
    if not distributed:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(names, tensor.tolist(), strict=True))


def _summary(record: dict[str, Any]) -> str:
    parts = [f"step {record['step']}", f"loss {record['loss']:.4f}", f"lr {record['lr']:.2e}"]
    parts.append(f"{record['images_per_s']:.1f} img/s")
    if "val_abs_rel" in record:
        parts.append(f"val AbsRel {record['val_abs_rel']:.4f} δ1 {record['val_delta1']:.4f}")
    return " | ".join(parts)


def _log_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1


def _worker_start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _worker_init(worker_id: int) -> None:
    # Each DataLoader worker renders or decodes one sample at a time; threads inside
    # it would only fight the training process for the same cores.
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(numpy_state["state"]["pos"]),
        "python": _python_rng_state(),
    }


def _python_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": state["numpy_key"].numpy().astype(np.uint32),
                "pos": state["numpy_pos"],
            },
            "has_gauss": 0,
            "gauss": 0.0,
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def iterate_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a run's ``log.jsonl``."""
    with Path(path).open() as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
