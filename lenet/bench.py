"""Training-throughput benchmark: our in-memory pipeline vs the original notebook's, every variant's
images/s and GFLOP/s against this machine's own sgemm rate, and the quick demo's wall time.

The notebook fed LeNet-5 through torchvision's FashionMNIST dataset with ToTensor + Normalize
per sample and a DataLoader; we decode once and slice batches from normalized tensors. Both train
the same model at the same batch size in the same process, alternating rounds, so the ratio is
fair on a noisy shared machine. GFLOP/s count the network's own arithmetic (the plain layers'
convolutions and matrix products, forward and backward), not what a faster formulation adds.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from . import data
from .artifacts import list_checkpoints
from .models import create_model, list_models
from .presets import PRESETS
from .records import RunStatus
from .train import TrainConfig, TrainTask, resolve_device, train_together
from .worker import PoolSettings, available_cores, wait_for_runs
from .workspace import Workspace


def _subset(split: data.Split, n: int) -> data.Split:
    return data.Split(split.images[:n], split.labels[:n])


# Runs of the quick demo that the worker pool trains together, stacked (README, "Throughput")
STACKED_DEMO_RUNS = ("baseline", "dropout", "l2")


def ours_images_per_s(
    splits: data.Splits,
    steps: int,
    batch_size: int,
    device: str,
    variant: str = "baseline",
    *,
    stacked_with: tuple[str, ...] = (),
) -> float:
    """Time our real training loop (`lenet.train.train`) over `steps` batches of one variant, or
    of it and `stacked_with` trained together (images/s of all of them)."""
    n = steps * batch_size
    subset = data.Splits(
        train=_subset(splits.train, n),
        val=_subset(splits.val, batch_size),  # validation is not what we measure
        test=_subset(splits.test, batch_size),
        fingerprint=splits.fingerprint,
        source=splits.source,
    )
    configs = [
        TrainConfig.for_variant(v, epochs=1, batch_size=batch_size, device=device)
        for v in (variant, *stacked_with)
    ]
    started = time.perf_counter()
    results = train_together([TrainTask(c) for c in configs], subset)
    seconds = results[0].history[0].seconds if results[0].history else time.perf_counter() - started
    return n * len(configs) / seconds


def stacked_images_per_s(splits: data.Splits, steps: int, batch_size: int) -> tuple[float, float]:
    """(images/s of STACKED_DEMO_RUNS trained together, of the same runs one after another), at
    one thread: how the worker pool trains the quick demo on a laptop."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first, *others = STACKED_DEMO_RUNS
        together = ours_images_per_s(splits, steps, batch_size, "cpu", first, stacked_with=tuple(others))
        alone = [ours_images_per_s(splits, steps, batch_size, "cpu", v) for v in STACKED_DEMO_RUNS]
    finally:
        torch.set_num_threads(threads)
    return together, len(alone) / sum(1 / speed for speed in alone)


def training_flops_per_image(variant: str = "baseline") -> float:
    """Floating-point operations of one training step per image: forward and backward of the
    plain layers (`feature` then `classifier`), as torch's FLOP counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(variant).train()
    images, labels = torch.zeros(16, 1, 28, 28), torch.zeros(16, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model.classifier(model.feature(images)), labels).backward()
    return counter.get_total_flops() / len(images)


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-product rate at the current thread count (best of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def notebook_loader(raw_dir: Path, batch_size: int) -> torch.utils.data.DataLoader:
    """The notebook's pipeline: torchvision dataset, per-sample ToTensor + Normalize, DataLoader."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((data.MEAN,), (data.STD,))])
    dataset = datasets.FashionMNIST(raw_dir, train=True, download=False, transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)


def notebook_images_per_s(loader, steps: int, device: str) -> float:
    """The notebook's training loop (per-batch .item() calls and accuracy, as it was written)."""
    torch.manual_seed(0)
    device = resolve_device(device)
    model = create_model("baseline").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    train_loss = train_acc = 0.0
    seen = 0
    started = time.perf_counter()
    for step, (X, y) in enumerate(loader):
        if step == steps:
            break
        X, y = X.to(device), y.to(device)
        y_pred = model(X)
        loss = loss_fn(y_pred, y)
        train_loss += loss.item()
        train_acc += (y_pred.argmax(dim=1) == y).float().mean().item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen / (time.perf_counter() - started)


def write_torchvision_layout(raw: data.RawDataset, root: Path) -> Path:
    """Decompressed IDX files where torchvision's FashionMNIST(root) expects them."""
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        source = data.find_file(raw.source, name)
        payload = source.read_bytes()
        if payload[:2] == b"\x1f\x8b":
            payload = gzip.decompress(payload)
        (folder / name).write_bytes(payload)
    return root


def sample_drawing_png(size: int = 280) -> bytes:
    """A canvas-sized PNG of a white T-shirt drawn on black: what the sandbox's canvas sends."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    s = size / 28
    shirt = [(9, 4), (19, 4), (25, 9), (22, 12), (20, 10), (20, 25), (8, 25), (8, 10), (6, 12), (3, 9)]
    ImageDraw.Draw(image).polygon([(x * s, y * s) for x, y in shirt], fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def predict_latency_ms(checkpoints: list[Path], repeats: int = 50) -> float:
    """Median server-side time from PNG bytes to every model's probabilities (models preloaded)."""
    from .artifacts import load_checkpoint
    from .predict import INFERENCE_THREADS, open_image, predict, to_model_input

    models = {Path(p).stem: load_checkpoint(p)[0] for p in checkpoints}
    payload = sample_drawing_png()
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(INFERENCE_THREADS)  # as the dashboard and `lenet predict` run
    try:
        for _ in range(repeats + 5):
            started = time.perf_counter()
            predict(models, to_model_input(open_image(payload)).tensor)
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return 1000 * statistics.median(times[5:])  # the first calls warm up allocators


def run_bench(
    raw: data.RawDataset,
    pretrained_dir: Path,
    steps: int = 300,
    rounds: int = 3,
    batch_size: int = 64,
    device: str = "auto",
    progress=lambda message: None,
) -> dict:
    splits = data.make_splits(raw)
    device_name = str(resolve_device(device))
    steps = min(steps, len(splits.train) // batch_size)
    variants = list_models()
    ours, notebook = [], []
    per_variant_rounds = {v: [] for v in variants}
    stacked_rounds = []
    with tempfile.TemporaryDirectory(prefix="lenet-bench-") as tmp:
        loader = notebook_loader(write_torchvision_layout(raw, Path(tmp)), batch_size)
        # Warm-up: first calls pay for allocator growth and oneDNN kernel selection.
        for variant in variants:
            ours_images_per_s(splits, 10, batch_size, device_name, variant)
        notebook_images_per_s(loader, 20, device_name)
        for r in range(1, rounds + 1):
            ours.append(ours_images_per_s(splits, steps, batch_size, device_name))
            notebook.append(notebook_images_per_s(loader, steps, device_name))
            for variant in variants:
                per_variant_rounds[variant].append(
                    ours_images_per_s(splits, steps, batch_size, device_name, variant)
                )
            if device_name == "cpu":
                stacked_rounds.append(stacked_images_per_s(splits, steps, batch_size))
            progress(f"round {r}/{rounds}: ours {ours[-1]:,.0f} img/s, notebook {notebook[-1]:,.0f} img/s")
    ours_median, notebook_median = statistics.median(ours), statistics.median(notebook)
    sgemm = sgemm_gflops()
    per_variant = []
    for variant in variants:
        speed = statistics.median(per_variant_rounds[variant])
        gflops = speed * training_flops_per_image(variant) / 1e9
        per_variant.append(
            {"variant": variant, "images_per_s": speed, "gflops": gflops, "share_of_sgemm": gflops / sgemm}
        )
    stacked = None
    if stacked_rounds:
        together, alone = (statistics.median(column) for column in zip(*stacked_rounds, strict=True))
        stacked = {
            "runs": list(STACKED_DEMO_RUNS),
            "together_images_per_s": together,
            "alone_images_per_s": alone,
        }
    shipped = [c.path for c in list_checkpoints(pretrained_dir)]
    return {
        "ours_images_per_s": ours_median,
        "notebook_images_per_s": notebook_median,
        "ratio": ours_median / notebook_median,
        "ours_rounds": ours,
        "notebook_rounds": notebook,
        "variants": per_variant,
        "stacked": stacked,
        "sgemm_gflops": sgemm,
        "steps": steps,
        "rounds": rounds,
        "batch_size": batch_size,
        "device": device_name,
        "threads": torch.get_num_threads(),
        "predict_ms": predict_latency_ms(shipped) if shipped else None,
        "predict_models": len(shipped),
    }


def preset_wall_time(preset: str, pool: PoolSettings, data_dir: str | None = None) -> float:
    """Seconds for the worker pool to train a whole preset, queued at once into a fresh workspace."""
    with tempfile.TemporaryDirectory(prefix="lenet-pool-") as home:
        workspace = Workspace(Path(home))
        ids = [workspace.store.enqueue(c, data_dir=data_dir) for c in PRESETS[preset].configs()]
        started = time.perf_counter()
        runs = wait_for_runs(workspace, ids, pool=pool, poll_s=0.2)
        elapsed = time.perf_counter() - started
        for pid in workspace.store.live_workers():  # idle now; they would wait a minute to leave
            os.kill(pid, signal.SIGTERM)
    if any(run.status != RunStatus.FINISHED for run in runs):
        raise RuntimeError(f"the {preset} preset did not finish under {pool}")
    return elapsed


def pool_bench(preset: str = "quick_demo", data_dir: str | None = None, progress=lambda m: None) -> dict:
    """The same preset with one run on every core, and with one single-threaded run per core."""
    cores = available_cores()
    layouts = [PoolSettings(1, cores), PoolSettings(cores, 1)]
    if PoolSettings.for_cores(cores) not in layouts:
        layouts.append(PoolSettings.for_cores(cores))
    rows = []
    for pool in layouts:
        seconds = preset_wall_time(preset, pool, data_dir)
        progress(f"{preset}: {pool.parallel_runs} run(s) x {pool.threads_per_run} thread(s): {seconds:.0f} s")
        rows.append(
            {"parallel_runs": pool.parallel_runs, "threads_per_run": pool.threads_per_run, "seconds": seconds}
        )
    default = PoolSettings.for_cores(cores)
    return {"preset": preset, "cores": cores, "pools": rows, "default": vars(default)}
