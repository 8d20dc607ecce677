"""Models saved by Hugging Face diffusers, opened wherever a run opens.

A diffusers folder is either a pipeline (``model_index.json`` with ``unet/`` and ``scheduler/``, as
``DDPMPipeline.save_pretrained`` writes it) or a ``UNet2DModel`` folder (``config.json`` naming the
class, and its weights) with the scheduler's ``scheduler_config.json`` in the same folder, in a
``scheduler/`` folder inside it, or in a ``scheduler/`` folder beside it.

Recognising and describing such a folder reads JSON only. Loading the weights needs the optional
``diffusers`` package, imported lazily here; without it the error says what to install. The
scheduler's betas become a :class:`NoiseSchedule` (same maths, float64) and its prediction type
our objective; diffview's own DDPM and DDIM samplers then run the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from diffview.core.io.checkpoint import CheckpointError
from diffview.core.runs.handle import FromDiffusers, ImageShape, LoadedRun, ModelHandle
from diffview.core.schedule import NoiseSchedule, make_schedule, rescale_zero_terminal_snr, schedule_from_betas

INSTALL = 'pip install "diffview[diffusers]"'
PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
# diffusers' beta_schedule → ours, the same maths:
#   linear             β = linspace(β_start, β_end, T)                 (no 1000/T scaling: both ends given)
#   scaled_linear      β = linspace(√β_start, √β_end, T)²              (our "quadratic")
#   squaredcos_cap_v2  ᾱ = cos²((t/T + 0.008)/1.008 · π/2), β ≤ 0.999   (our "cosine", Nichol & Dhariwal eq. 17)
#   sigmoid            β = σ(linspace(−6, 6, T)) (β_end − β_start) + β_start  (our "sigmoid-beta", GeoDiff)
BETA_SCHEDULES = {"linear": "linear", "scaled_linear": "quadratic", "squaredcos_cap_v2": "cosine",
                  "sigmoid": "sigmoid-beta"}
OUR_SAMPLING = {"timestep_spacing": ("trailing",), "clip_sample": (True,), "set_alpha_to_one": (True,)}
"""Scheduler settings that only shape diffusers' own sampling loop, and the values diffview's samplers
match: trailing spacing, x̂_0 clipped to [−1, 1], ᾱ_prev = 1 at the last step."""
# diffusers' variance_type → the σ²_t of p_θ(x_{t−1} | x_t) that diffview's DDPM and the bound use:
#   fixed_small, fixed_small_log  σ²_t = β̃_t                    (the *_log one only takes its log on the way)
#   fixed_large, fixed_large_log  σ²_t = β_t                    (GLIDE's max_log; diffusers' own step takes
#                                                                √ of the log there, a NaN, so we use the intent)
#   learned_range                 log σ²_t = v′ log β_t + (1−v′) log β̃_t, v′ = (v+1)/2   (improved DDPM eq. 15)
#   learned                       σ²_t = v, the variance channels as diffusers' DDPMScheduler.step reads them
VARIANCE_TYPES = {"fixed_small": "fixed_small", "fixed_small_log": "fixed_small", "fixed_large": "fixed_large",
                  "fixed_large_log": "fixed_large", "learned": "learned", "learned_range": "learned_range"}


class DiffusersMissingError(CheckpointError):
    """A diffusers folder was opened without the diffusers package installed."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_model_dir(d: Path) -> bool:
    cfg = _read_json(d / "config.json")
    return cfg is not None and "_class_name" in cfg and "_diffusers_version" in cfg


def _has_weights(d: Path) -> bool:
    return any(d.glob("diffusion_pytorch_model*.safetensors")) or any(d.glob("diffusion_pytorch_model*.bin"))


def looks_like_diffusers(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds something diffusers wrote (complete or not): a pipeline or a model folder."""
    p = Path(path)
    return (p / "model_index.json").is_file() or _is_model_dir(p)


def _locate(path: str | os.PathLike) -> tuple[Path, Path]:
    """(the UNet folder, the scheduler config) of a diffusers folder; CheckpointError says what is missing."""
    p = Path(path)
    if (p / "model_index.json").is_file():
        unet, sched = p / "unet", p / "scheduler" / "scheduler_config.json"
        if not _is_model_dir(unet) or not sched.is_file():
            raise CheckpointError(f"{p} is a diffusers pipeline without unet/config.json and "
                                  "scheduler/scheduler_config.json; diffview opens UNet2DModel pipelines (DDPM, DDIM)")
        return unet, sched
    if not _is_model_dir(p):
        raise CheckpointError(f"{p} is not a diffusers model folder (no config.json written by diffusers)")
    for sched in (p / "scheduler_config.json", p / "scheduler" / "scheduler_config.json",
                  p.parent / "scheduler" / "scheduler_config.json"):
        if sched.is_file():
            return p, sched
    raise CheckpointError(f"{p} holds a diffusers model but no scheduler config: put the scheduler's "
                          "scheduler_config.json beside it or in a scheduler/ folder")


def is_diffusers_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a UNet2DModel with its scheduler config, or a pipeline of both (reads JSON only)."""
    try:
        unet, sched = _locate(path)
    except CheckpointError:
        return False
    cfg = _read_json(unet / "config.json") or {}
    return cfg.get("_class_name") == "UNet2DModel" and _has_weights(unet) and _read_json(sched) is not None


def schedule_from_scheduler_config(cfg: dict[str, Any]) -> NoiseSchedule:
    """The NoiseSchedule of a DDPM/DDIM scheduler config (its betas, computed in float64)."""
    if cfg.get("thresholding"):
        raise ValueError("scheduler option thresholding=true (dynamic thresholding) is not supported by diffview")
    T = cfg.get("num_train_timesteps", 1000)
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"scheduler option num_train_timesteps must be an integer >= 1, got {T!r}")
    zero_snr = bool(cfg.get("rescale_betas_zero_snr", False))
    if cfg.get("trained_betas") is not None:
        try:
            betas = torch.as_tensor(cfg["trained_betas"], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError("scheduler option trained_betas must be a list of numbers") from None
        if betas.ndim != 1:
            raise ValueError(f"scheduler option trained_betas must be a list of numbers, "
                             f"got shape {tuple(betas.shape)}")
        if zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        return schedule_from_betas(betas, name="trained", options={"zero_terminal_snr": True} if zero_snr else {},
                                   allow_terminal_one=zero_snr)
    name = cfg.get("beta_schedule", "linear")
    if name not in BETA_SCHEDULES:
        raise ValueError(f"scheduler option beta_schedule={name!r} is not supported; "
                         f"diffview reads {', '.join(BETA_SCHEDULES)} or trained_betas")
    opts: dict[str, Any] = {}
    if BETA_SCHEDULES[name] != "cosine":
        opts = {"beta_start": float(cfg.get("beta_start", 0.0001)), "beta_end": float(cfg.get("beta_end", 0.02))}
    if zero_snr:
        opts["zero_terminal_snr"] = True
    return make_schedule(BETA_SCHEDULES[name], T, **opts)


def _mapped_option(cfg: dict[str, Any], name: str, default: str, ours: dict[str, str]) -> str:
    """Our value for a scheduler option through the table ``ours``; an option we cannot map is a one-line error."""
    kind = cfg.get(name, default)
    if kind not in ours:
        raise ValueError(f"scheduler option {name}={kind!r} is not supported; diffview reads {', '.join(ours)}")
    return ours[kind]


def objective_from_scheduler_config(cfg: dict[str, Any]) -> str:
    """Our objective for the scheduler's prediction_type: epsilon → eps, sample → x0, v_prediction → v."""
    return _mapped_option(cfg, "prediction_type", "epsilon", PREDICTION_TYPES)


def variance_from_scheduler_config(cfg: dict[str, Any]) -> str:
    """Our reverse variance for the scheduler's variance_type (see VARIANCE_TYPES)."""
    return _mapped_option(cfg, "variance_type", "fixed_small", VARIANCE_TYPES)


class DiffusersUNet(torch.nn.Module):
    """A diffusers UNet2DModel called as diffview calls a model: ``model(x_t, t)`` → the prediction.

    ``variance_type`` is the reverse variance its scheduler samples with; a learned one reads the
    UNet's second half of channels, through ``with_variance(x_t, t)`` → (prediction, v).
    """

    def __init__(self, unet: torch.nn.Module, channels: int, variance_type: str = "fixed_small"):
        super().__init__()
        self.unet = unet
        self.channels = channels
        self.variance_type = variance_type

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # a learned-variance model returns [mean prediction, variance]: the mean half
        return self.unet(x, t).sample[:, : self.channels]

    def with_variance(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.unet(x, t).sample
        return out[:, : self.channels], out[:, self.channels:]


def _import_diffusers(root: Path):
    try:
        import diffusers
    except ImportError as e:
        if e.name == "diffusers":
            raise DiffusersMissingError(f"{root} is a diffusers model folder; opening it needs the diffusers "
                                        f"package: {INSTALL}") from None
        raise CheckpointError(f"{root} is a diffusers model folder, but diffusers cannot be imported ({e})") from None
    return diffusers


def _checked_unet_config(root: Path, unet_dir: Path, variance: str = "fixed_small") -> tuple[int, int]:
    """(channels, image size) of a UNet2DModel config; CheckpointError for what diffview cannot sample."""
    cfg = _read_json(unet_dir / "config.json") or {}
    cls = cfg.get("_class_name")
    if cls != "UNet2DModel":
        raise CheckpointError(f"{root} holds a diffusers {cls}; diffview opens unconditional UNet2DModel "
                              "models (DDPM, DDIM) only")
    if cfg.get("num_class_embeds") or cfg.get("class_embed_type"):
        raise CheckpointError(f"{root} holds a class-conditional UNet2DModel; diffview samples unconditional ones only")
    if not _has_weights(unet_dir):
        raise CheckpointError(f"{unet_dir} has no weights (diffusion_pytorch_model.safetensors or .bin)")
    size = cfg.get("sample_size", 32)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise CheckpointError(f"{root} samples {size[0]}×{size[1]} images; diffview samples square ones only")
        size = size[0]
    c_in, c_out = int(cfg.get("in_channels", 3)), int(cfg.get("out_channels", 3))
    if c_out not in (c_in, 2 * c_in):
        raise CheckpointError(f"{root}: a UNet with {c_in} input and {c_out} output channels is not an image denoiser")
    if variance in ("learned", "learned_range") and c_out != 2 * c_in:
        raise CheckpointError(f"{root}: the scheduler's variance_type is {variance} but the UNet has {c_out} output "
                              f"channels, not {2 * c_in}: it predicts no variance")
    return c_in, int(size)


def open_diffusers_folder(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a diffusers UNet2DModel and its scheduler as a :class:`LoadedRun` (eval mode, on ``device``): no
    config (diffview does not train it further), step 0, one set of weights."""
    root = Path(path)
    unet_dir, sched_path = _locate(root)
    sched = _read_json(sched_path)
    if sched is None:
        raise CheckpointError(f"{sched_path} cannot be read as JSON")
    try:
        schedule = schedule_from_scheduler_config(sched)
        objective = objective_from_scheduler_config(sched)
        variance = variance_from_scheduler_config(sched)
    except ValueError as e:
        raise CheckpointError(f"{sched_path}: {e}") from None
    channels, size = _checked_unet_config(root, unet_dir, variance)
    diffusers = _import_diffusers(root)
    try:
        unet = diffusers.UNet2DModel.from_pretrained(str(unet_dir), torch_dtype=torch.float32,
                                                   low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"diffusers could not load the UNet in {unet_dir} ({first})") from None
    model = DiffusersUNet(unet, channels, variance).eval().to(device)
    origin = FromDiffusers(root)
    handle = ModelHandle(model, schedule, objective, ImageShape(channels, size), origin, str(origin))
    return LoadedRun(root, None, unet_dir, 0, False, handle)


def describe_diffusers_folder(path: str | os.PathLike) -> str:
    """A few human lines about a diffusers folder, read from its JSON (diffusers need not be installed)."""
    root = Path(path)
    unet_dir, sched_path = _locate(root)
    unet = _read_json(unet_dir / "config.json") or {}
    sched = _read_json(sched_path) or {}
    lines = [f"diffusers model {root}",
             f"  model     {unet.get('_class_name')} from diffusers {unet.get('_diffusers_version', '?')}, "
             f"{unet.get('sample_size')}×{unet.get('sample_size')}, {unet.get('in_channels')} channel(s), "
             f"blocks {unet.get('block_out_channels')}"]
    try:
        schedule = schedule_from_scheduler_config(sched)
        objective = objective_from_scheduler_config(sched)
        kind = "trained_betas" if sched.get("trained_betas") is not None else sched.get("beta_schedule", "linear")
        lines.append(f"  scheduler {sched.get('_class_name')}: {kind} (diffview's {schedule.name}), "
                     f"T={schedule.timesteps}, {sched.get('prediction_type', 'epsilon')} → {objective} objective")
    except ValueError as e:
        lines.append(f"  scheduler {sched.get('_class_name')}: cannot be used ({e})")
    differ = [f"{k}={sched[k]}" for k, ours in OUR_SAMPLING.items() if k in sched and sched[k] not in ours]
    try:
        variance = {"fixed_small": "σ²_t = β̃_t", "fixed_large": "σ²_t = β_t",
                    "learned_range": "σ²_t learned (improved DDPM eq. 15)",
                    "learned": "σ²_t learned"}[variance_from_scheduler_config(sched)]
    except ValueError as e:
        variance = f"cannot be used: {e}"
    lines.append("  sampling  diffview's own DDPM and DDIM (trailing spacing, x̂_0 clipped to [−1, 1], "
                 f"{variance})" + (f"; the scheduler's own differ: {', '.join(differ)}" if differ else ""))
    lines.append("  training  none here: diffview samples from a diffusers model but does not train it further")
    return "\n".join(lines)


__all__ = ["BETA_SCHEDULES", "DiffusersMissingError", "DiffusersUNet", "INSTALL", "PREDICTION_TYPES",
           "describe_diffusers_folder", "is_diffusers_folder", "looks_like_diffusers",
           "objective_from_scheduler_config", "open_diffusers_folder", "schedule_from_scheduler_config",
           "variance_from_scheduler_config", "VARIANCE_TYPES"]
