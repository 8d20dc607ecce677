"""Samplers side by side, from one shared x_T: each one's samples and cost, and quality against the number of
network evaluations (NFE) it spends.

Samplers are compared at equal NFE, never at equal steps: a Heun step costs two evaluations where it corrects
(core.sampling.nfe), so ten Heun steps cost what nineteen DDIM steps do. ``quality_by_nfe`` runs every sampler at
each NFE budget with the most steps that fit it (core.sampling.steps_for_nfe) and measures
- for images: the RMS distance, in grey levels, to a high-accuracy solution of the probability-flow ODE from the
  same x_T (DPM-Solver++(2M) with 250 steps): how far each sampler is from where its ODE leads;
- for 2D points: the sliced Wasserstein distance to the data, with its floor (core.data.points.distance_to_data).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch

from diffview.core.data.points import PointDataset, distance_to_data
from diffview.core.diffusion import Model
from diffview.core.sampling import ODE_SAMPLERS, SAMPLER_NAMES, SAMPLERS, SampleStep, iter_sample, nfe, steps_for_nfe
from diffview.core.schedule import NoiseSchedule

DEFAULT_BUDGETS = (5, 10, 20, 50, 100)
REFERENCE_SAMPLER = "dpmpp-2m"
REFERENCE_STEPS = 250
GREY_LEVELS = 127.5  # one unit of x in [−1, 1] is 127.5 of the 0–255 grey levels


# ----------------------------------------------------------------------------- samplers side by side
@dataclass(frozen=True)
class SamplerSpec:
    label: str
    sampler: str  # any of core.sampling.SAMPLERS
    steps: int
    eta: float = 0.0  # DDIM's η
    spacing: str = "trailing"
    s_churn: float = 0.0  # Heun's churn (EDM Alg. 2); 0 is Alg. 1
    nfe: int | None = None  # the network evaluations its steps cost (core.sampling.nfe), None until known

    @property
    def deterministic(self) -> bool:
        """Whether it solves the probability-flow ODE (DDIM at η = 0, Heun without churn, DPM-Solver++(2M))."""
        return self.sampler in ODE_SAMPLERS and self.eta == 0 and self.s_churn == 0


def sampler_spec(sampler: str, steps: int, schedule: NoiseSchedule, *, eta: float = 0.0, spacing: str = "trailing",
                 s_churn: float = 0.0, label: str | None = None) -> SamplerSpec:
    """A :class:`SamplerSpec` with its NFE, labelled "<sampler>, NFE n" unless ``label`` says otherwise."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    cost = nfe(sampler, steps, schedule, spacing, s_churn=s_churn)
    if label is None:
        name = SAMPLER_NAMES[sampler] + (f" η={eta:g}" if sampler == "ddim" else "")
        name += f" churn {s_churn:g}" if sampler == "heun" and s_churn else ""
        label = f"{name}, NFE {cost}"
    return SamplerSpec(label, sampler, steps, eta, spacing, s_churn, cost)


def spec_at_budget(sampler: str, budget: int, schedule: NoiseSchedule, *, eta: float = 0.0,
                   spacing: str = "trailing", s_churn: float = 0.0) -> SamplerSpec:
    """The sampler with the most steps whose NFE stays within ``budget`` (core.sampling.steps_for_nfe)."""
    return sampler_spec(sampler, steps_for_nfe(sampler, budget, schedule, spacing), schedule, eta=eta,
                        spacing=spacing, s_churn=s_churn)


def default_sampler_specs(schedule: NoiseSchedule) -> list[SamplerSpec]:
    """DDPM with all T steps; at NFE min(50, T) DDPM respaced, DDIM at η = 0 and 1, Heun and DPM-Solver++(2M);
    at NFE min(10, T) (if less) DDIM at η = 0, Heun and DPM-Solver++(2M)."""
    T = schedule.timesteps
    specs = [sampler_spec("ddpm", T, schedule, label=f"DDPM, all {T} steps"),
             spec_at_budget("ddpm", min(50, T), schedule)]
    specs += [spec_at_budget("ddim", min(50, T), schedule, eta=eta) for eta in (0.0, 1.0)]
    specs += [spec_at_budget(s, min(50, T), schedule) for s in ("heun", "dpmpp-2m")]
    if min(10, T) < min(50, T):
        specs += [spec_at_budget(s, 10, schedule) for s in ODE_SAMPLERS]
    return specs


@dataclass
class SamplerResult:
    spec: SamplerSpec
    samples: torch.Tensor  # x_0, CPU float32
    seconds: float
    nfe: int = 0  # the network evaluations its steps reported (SampleStep.nfe)


def _final_counted(steps: Iterable[SampleStep], stop: Callable[[], bool] | None) -> tuple[torch.Tensor | None, int]:
    """(x_0, the steps' NFE summed); x_0 None once ``stop()``, asked after every step, is True."""
    last, used = None, 0
    for last in steps:
        used += last.nfe
        if stop is not None and stop():
            return None, used
    return (None if last is None else last.x_prev), used


def run_sampler(model: Model, x_T: torch.Tensor, schedule: NoiseSchedule, spec: SamplerSpec, *, objective: str,
                clip_x0: bool = True, seed: int = 0, stop: Callable[[], bool] | None = None,
                label: torch.Tensor | int | None = None, guidance_scale: float = 1.0) -> SamplerResult | None:
    """One sampler from (a copy of) x_T, its noise from ``seed``; None once ``stop()`` (asked after every step)."""
    t0 = time.perf_counter()
    steps = iter_sample(model, x_T.shape, schedule, sampler=spec.sampler, steps=spec.steps, eta=spec.eta,
                        spacing=spec.spacing, s_churn=spec.s_churn, objective=objective, clip_x0=clip_x0,
                        x_T=x_T.clone(), generator=torch.Generator().manual_seed(seed), label=label,
                        guidance_scale=guidance_scale)
    final, used = _final_counted(steps, stop)
    if final is None:
        return None
    return SamplerResult(spec, final.float().cpu(), time.perf_counter() - t0, used)


@torch.no_grad()
def compare_samplers(model: Model, x_T: torch.Tensor, schedule: NoiseSchedule, specs: Sequence[SamplerSpec], *,
                     objective: str, clip_x0: bool = True, seed: int = 0,
                     stop: Callable[[], bool] | None = None, label: torch.Tensor | int | None = None,
                     guidance_scale: float = 1.0) -> Iterator[SamplerResult]:
    """Run every sampler from the same x_T (stochastic ones with the same noise seed); a result per sampler.

    ``label`` (a class index, or one per sample) guides a class-conditional model towards that class at
    ``guidance_scale`` in every sampler alike (``iter_sample``); None samples it unconditionally.
    ``stop()`` is asked before every model call; once it is True the iteration ends."""
    for spec in specs:
        if stop is not None and stop():
            return
        res = run_sampler(model, x_T, schedule, spec, objective=objective, clip_x0=clip_x0, seed=seed, stop=stop,
                          label=label, guidance_scale=guidance_scale)
        if res is None:  # stopped: asked after every step, before the next model call
            return
        yield res


# ----------------------------------------------------------------------------- quality against NFE
def rms_grey_levels(x: torch.Tensor, reference: torch.Tensor) -> float:
    # RMS = 127.5 · √(mean((clamp(x) − clamp(x_ref))²)) over every pixel of every image
    """The RMS distance between two batches of images in [−1, 1], as shown (clamped), in 0–255 grey levels."""
    d = x.double().clamp(-1, 1) - reference.double().clamp(-1, 1)
    return GREY_LEVELS * math.sqrt(float(d.pow(2).mean()))


@dataclass(frozen=True)
class QualityPoint:
    """One sampler at one NFE budget: what it cost and how far it landed."""

    sampler: str
    budget: int
    spec: SamplerSpec  # the steps that fit the budget, and their NFE
    nfe: int  # the evaluations it spent (≤ budget)
    distance: float  # RMS to the reference (grey levels), or the sliced Wasserstein distance to the data
    seconds: float
    samples: torch.Tensor  # x_0, CPU float32
    floor: float | None = None  # the 2D metric's floor: two draws of the data apart


@dataclass
class QualityCurves:
    """Every sampler's distance against its NFE, from one x_T."""

    metric: str  # "reference" (images) or "data" (2D points)
    points: list[QualityPoint] = field(default_factory=list)
    reference: torch.Tensor | None = None  # the ODE reference's x_0 ("reference")
    reference_nfe: int = 0
    reference_seconds: float = 0.0
    floor: float | None = None  # ("data")
    compared: int = 0  # points compared with the data ("data")
    cancelled: bool = False

    def curve(self, sampler: str) -> tuple[list[int], list[float]]:
        """(NFE, distance) of one sampler's points, in the order of its budgets."""
        pts = [p for p in self.points if p.sampler == sampler]
        return [p.nfe for p in pts], [p.distance for p in pts]

    def fewest_nfe(self, sampler: str, threshold: float) -> int | None:
        """The fewest NFE at which ``sampler`` measured a distance ≤ ``threshold`` (None: at no budget)."""
        hits = [p.nfe for p in self.points if p.sampler == sampler and p.distance <= threshold]
        return min(hits) if hits else None


def nfe_budgets(budgets: Sequence[int], T: int) -> list[int]:
    """The budgets, sorted, without repeats, each ≥ 1 and at most T (the most a one-evaluation sampler can spend)."""
    bad = [b for b in budgets if isinstance(b, bool) or int(b) != b or b < 1]
    if bad:
        raise ValueError(f"an NFE budget must be a whole number ≥ 1, got {bad[0]!r}")
    kept = sorted({int(b) for b in budgets if b <= T})
    if not kept:
        raise ValueError(f"every NFE budget exceeds T = {T}; choose budgets up to {T}")
    return kept


@torch.no_grad()
def quality_by_nfe(model: Model, x_T: torch.Tensor, schedule: NoiseSchedule, samplers: Sequence[str],
                   budgets: Sequence[int] = DEFAULT_BUDGETS, *, objective: str, clip_x0: bool = True,
                   metric: str = "reference", data: PointDataset | None = None, spacing: str = "trailing",
                   reference_steps: int = REFERENCE_STEPS, eta: float = 0.0, seed: int = 0,
                   progress: Callable[[QualityPoint, int, int], None] | None = None,
                   stop: Callable[[], bool] | None = None, label: torch.Tensor | int | None = None,
                   guidance_scale: float = 1.0) -> QualityCurves:
    """Every sampler at every NFE budget (``nfe_budgets``: at most T) from the same x_T, with its distance and
    wall time. Each budget runs the most steps whose NFE fits it (``spec_at_budget``), so the samplers meet at
    equal cost; a budget that adds no step to the one before (Heun near T) is measured once.

    ``metric`` "reference" (images): the RMS distance in grey levels (``rms_grey_levels``) to DPM-Solver++(2M)
    with ``reference_steps`` steps (at most T, trailing spacing) from the same x_T: the probability-flow ODE's
    own x_0, which every ODE sampler approaches as its NFE grows. Only the deterministic samplers (DDIM at
    η = 0, Heun without churn, DPM-Solver++(2M)) solve that ODE; a stochastic sampler lands on another sample
    whatever its NFE, so it is refused here: compare it by its distance to the data.
    ``metric`` "data" (2D points): the sliced Wasserstein distance to ``data`` and its floor
    (``distance_to_data``), for any sampler, DDPM and η > 0 included.

    ``progress(point, done, total)`` follows each point; ``stop()`` is asked after every step (before the next
    model call): once True the curves so far come back with ``cancelled``. ``label`` and ``guidance_scale``
    guide every sampler and the reference alike."""
    if metric not in ("reference", "data"):
        raise ValueError(f"unknown metric {metric!r}; choose 'reference' (images) or 'data' (2D points)")
    if metric == "data" and data is None:
        raise ValueError("the distance to the data needs the data")
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampler {unknown[0]!r}; choose from {', '.join(SAMPLERS)}")
    budgets = nfe_budgets(budgets, schedule.timesteps)
    specs = []
    for s in dict.fromkeys(samplers):
        seen = set()
        for b in budgets:
            spec = spec_at_budget(s, b, schedule, eta=eta if s == "ddim" else 0.0, spacing=spacing)
            if spec.steps not in seen:
                seen.add(spec.steps)
                specs.append((b, spec))
    if metric == "reference":
        stochastic = next((spec for _, spec in specs if not spec.deterministic), None)
        if stochastic is not None:
            raise ValueError(f"{stochastic.label.split(',')[0]} is stochastic: its distance to the ODE's reference "
                             "measures its noise, not its error; compare it by the distance to 2D data")
    out = QualityCurves(metric)
    guide = dict(objective=objective, clip_x0=clip_x0, seed=seed, stop=stop, label=label,
                 guidance_scale=guidance_scale)
    if metric == "reference":
        ref = sampler_spec(REFERENCE_SAMPLER, min(reference_steps, schedule.timesteps), schedule)
        res = run_sampler(model, x_T, schedule, ref, **guide)
        if res is None:
            out.cancelled = True
            return out
        out.reference, out.reference_nfe, out.reference_seconds = res.samples, res.nfe, res.seconds
    for i, (budget, spec) in enumerate(specs):
        res = run_sampler(model, x_T, schedule, spec, **guide)
        if res is None:
            out.cancelled = True
            return out
        if metric == "reference":
            distance, floor = rms_grey_levels(res.samples, out.reference), None
        else:
            distance, floor, out.compared = distance_to_data(res.samples, data)
            out.floor = floor
        point = QualityPoint(spec.sampler, budget, spec, res.nfe, distance, res.seconds, res.samples, floor)
        out.points.append(point)
        if progress is not None:
            progress(point, i + 1, len(specs))
    return out


__all__ = ["DEFAULT_BUDGETS", "QualityCurves", "QualityPoint", "REFERENCE_STEPS", "SamplerResult",
           "SamplerSpec", "compare_samplers", "default_sampler_specs", "nfe_budgets", "quality_by_nfe",
           "rms_grey_levels", "run_sampler", "sampler_spec", "spec_at_budget"]
