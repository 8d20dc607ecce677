"""Small builders shared by the tests: configs, datasets, image folders, a model that breaks on demand."""

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from diffview.core.data.images import ImageDataset
from diffview.core.train.config import TrainConfig


def tiny_config(**overrides) -> TrainConfig:
    base = dict(model="tiny", steps=20, batch_size=8, timesteps=50, warmup_steps=5, lr=2e-3, image_size=8,
                preview_every=10**6, checkpoint_every=10**6, preview_n=4, preview_steps=5, log_every=1, threads=2)
    base.update(overrides)
    return TrainConfig(**base)


def square_dataset(n: int = 32, size: int = 8, jitter: bool = False) -> ImageDataset:
    """``n`` 8×8 images of a bright square on black (identical unless ``jitter``)."""
    g = torch.Generator().manual_seed(0)
    imgs = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):
        o = int(torch.randint(0, 3, (1,), generator=g)) if jitter else 2
        imgs[i, 0, o : o + 4, o : o + 4] = 255
    return ImageDataset(imgs)


def write_image_folder(root: Path, n: int = 6, size: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((size, size)) * 255).astype(np.uint8)
        Image.fromarray(arr, mode="L").save(root / f"img_{i}.png")
    return root


class Breakable(torch.nn.Module):
    """The model, or a RuntimeError while ``broken`` (a job that fails must leave its view usable)."""

    def __init__(self, inner, message: str = "the model broke at this step"):
        super().__init__()
        self.inner, self.broken, self.message = inner, True, message

    def forward(self, x, t):
        if self.broken:
            raise RuntimeError(self.message)
        return self.inner(x, t)


# the 2D tab's tests: a run of a tiny MLP in a second or two, and the wait until the tab is idle
LAB2D_TINY = dict(model="mlp-tiny", steps=40, batch_size=64, preview_every=20, preview_n=200, preview_steps=10,
                  warmup_steps=5, threads=1)


@contextmanager
def lab2d_view(qtbot, tmp_path, size=(1200, 760)):
    """The 2D tab on its own, shown at ``size`` with a cosine schedule of T = 100 and the tiny recipe; shut down
    (its workers stopped) afterwards."""
    from diffview.core.schedule import make_schedule
    from diffview.gui.views.lab2d import Lab2DView

    v = Lab2DView(runs_root=tmp_path)
    qtbot.addWidget(v)
    v.resize(*size)
    v.show()
    v.set_schedule(make_schedule("cosine", 100))
    v.session.train_overrides = dict(LAB2D_TINY)
    yield v
    v.shutdown()
    qtbot.wait(20)


def lab2d_idle(qtbot, view, timeout=30_000) -> None:
    """Wait until the 2D tab's training, jobs and score field are all done."""
    s = view.session
    qtbot.waitUntil(lambda: not s.controller.running and not s.jobs and not s.score_busy, timeout=timeout)


class ToyConditional(torch.nn.Module):
    """A class-conditional "denoiser" whose output depends on the label: 0.5 x_t + a fixed random pattern per
    class (row ``num_classes`` is the null class ∅, label −1 or None), so guidance visibly changes samples."""

    def __init__(self, num_classes: int = 3, shape=(1, 8, 8), seed: int = 0):
        super().__init__()
        self.num_classes = num_classes
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("table", torch.randn(num_classes + 1, *shape, generator=g))

    def forward(self, x, t, y=None):
        if y is None:
            y = torch.full((x.shape[0],), -1, dtype=torch.long)
        rows = torch.where(y < 0, self.num_classes, y)
        return 0.5 * x + self.table[rows]


def gaussian_oracle(schedule, mu: float, sigma: float, objective: str = "eps"):
    """The ideal network for data x_0 ~ N(mu, sigma²) in every coordinate, for any objective: with
    s² = ᾱσ² + 1 − ᾱ, E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ)/s², E[x_0 | x_t] = μ + √ᾱ σ² (x_t − √ᾱ μ)/s², and
    v = √ᾱ ε − √(1−ᾱ) x_0 (Salimans & Ho 2022). Computed in the input's dtype from float64 coefficients."""
    def model(x_t, t):
        ab = schedule.alphas_cumprod[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        d = (x_t - ab.sqrt() * mu) / (ab * sigma**2 + 1 - ab)
        eps, x0 = (1 - ab).sqrt() * d, mu + ab.sqrt() * sigma**2 * d
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[objective]
    return model


FOLDER = SimpleNamespace(source="/some/folder")  # a dataset report's source: an image folder


def tiny_unet() -> torch.nn.Module:
    """The tiny UNet for 8×8 grey images, seeded (its output layers start at zero)."""
    from diffview.core.models.unet import build_unet

    torch.manual_seed(0)
    return build_unet("tiny", 1, 8).eval()


def noise_images(n: int = 40) -> ImageDataset:
    """``n`` 8×8 grey images of uniform noise, seeded."""
    g = torch.Generator().manual_seed(1)
    return ImageDataset(torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8))


def wire(view, model, schedule, dataset, report=FOLDER):
    """An analysis view given ``model`` as an eps model of 8×8 grey images and ``dataset`` as the session's."""
    from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle

    handle = ModelHandle(model, schedule, "eps", ImageShape(1, 8), FromTraining(1), "a tiny test model")
    view.model_source = lambda ema=True: handle
    view.data_source = lambda: (dataset, report)
    return view


def finish(qtbot, view, timeout=60_000):
    """Wait until the view's job is done."""
    qtbot.waitUntil(lambda: not view.busy, timeout=timeout)


def counting(model):
    """``model`` wrapped to record the timestep of every call, and the list it records into."""
    calls = []

    def counted(x, t):
        calls.append(int(t[0]))
        return model(x, t)
    return counted, calls


def process_running(pid: int) -> bool:
    """Whether process ``pid`` still runs (Linux's /proc; a zombie has exited, only its entry is left)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
