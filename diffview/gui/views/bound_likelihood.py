"""The Bound tab's ODE likelihood: the probability-flow ODE's exact NLL (``core.analysis.likelihood``) on the
bound's own held-out images, beside the variational bound, and the caption that says what each number is.

The Bound view's own part (its controls, the worker function and the side-by-side text): no other view imports
it (pyproject.toml's import contracts).
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QPushButton, QSpinBox

from diffview.core.analysis.bound import VLBResult
from diffview.core.analysis.likelihood import LikelihoodResult, ode_log_likelihood
from diffview.gui.widgets.text import readout

BUTTON = "ODE likelihood"
TOLERANCES = ("1e-2", "1e-3", "1e-4", "1e-5")
DEFAULT_TOLERANCE = "1e-3"  # 1e-2 is off by ~0.3 bits/dim on a small digits UNet; 1e-3 and 1e-4 agree to 1e-3

CAPTION = (
    "<b>Two numbers, two models.</b> The <b>VLB</b> is DDPM's bound L<sub>T</sub> + Σ L<sub>t−1</sub> + "
    "L<sub>0</sub> (eq. 5): an <i>upper bound</i> on −log₂ P(x<sub>0</sub>) of the <i>discrete</i> model the "
    "ancestral sampler draws from (T Gaussian steps, fixed or learned σ<sub>t</sub>, its decoder L<sub>0</sub> "
    "over the 256 levels). The <b>ODE NLL</b> is the <i>exact</i> −log p of the <i>continuous-time</i> model, the "
    "probability-flow ODE dy/dσ = ε̂ (y = x<sub>t</sub>/√ᾱ<sub>t</sub>), by the instantaneous change of variables: "
    "log p(y<sub>σ<sub>min</sub></sub>) = log N(y<sub>σ<sub>max</sub></sub>; 0, (1 + σ<sub>max</sub>²) I) + ∫ tr "
    "∂ε̂/∂y dσ (Song et al. 2021, app. D.2), σ from σ<sub>0</sub> to σ<sub>T−1</sub>, the trace by Hutchinson's "
    "estimator (± its standard error over images and probes), an adaptive Dormand–Prince solver at fractional t. "
    "It is another model built from the same network (the DDIM η = 0 limit of many steps), so neither number "
    "bounds the other, though in practice the ODE's is usually the lower (Song et al. 2021, sec. 4.3). Both are in "
    "bits/dim of 8-bit data: the ODE's density of x<sub>0</sub> + u, u uniform over one bin of width 2/255 "
    "(dequantised: an upper bound on the ODE model's bin probability), plus log₂ 127.5; the ODE uses ε̂ "
    "<i>unclipped</i> (the samplers clip x̂<sub>0</sub>), and a class-conditional model's null class ∅, as the "
    "bound does.")


class LikelihoodControls:
    """The ODE's settings, its button and its readout, added to the Bound view's form."""

    def __init__(self):
        self.images = QSpinBox()
        self.images.setRange(1, 1024)
        self.images.setValue(16)
        self.images.setToolTip("the first N of the bound's images (all of them when N ≥ the bound's Images)")
        self.probes = QSpinBox()
        self.probes.setRange(1, 64)
        self.probes.setValue(2)
        self.probes.setToolTip("ODE solves per image, each with its own Hutchinson probe and dequantisation; "
                               "two or more give the Monte-Carlo error")
        self.tolerance = QComboBox()
        self.tolerance.addItems(TOLERANCES)
        self.tolerance.setCurrentText(DEFAULT_TOLERANCE)
        self.tolerance.setToolTip("the solver's rtol = atol; smaller is more exact and takes more model calls")
        self.button = QPushButton(BUTTON)
        self.values = readout()
        self.values.setWordWrap(True)
        self.result: LikelihoodResult | None = None

    def add_to(self, form: QFormLayout) -> None:
        form.addRow("ODE images", self.images)
        form.addRow("ODE probes", self.probes)
        form.addRow("ODE tolerance", self.tolerance)
        form.addRow(self.button)
        form.addRow(self.values)

    def settings(self) -> dict:
        tol = float(self.tolerance.currentText())
        return {"images": self.images.value(), "probes": self.probes.value(), "rtol": tol, "atol": tol}


def likelihood_work(model, schedule, objective: str, images, settings: dict, seed: int = 0):
    """The worker function for ``JobView.run_job``: ``images()`` → (x0 of the bound, its note) on the worker, then
    the ODE on its first ``settings["images"]``; returns (result or None when cancelled, the note)."""
    def work(emit, cancelled):
        x0, note = images()
        k = min(settings["images"], x0.shape[0])
        note = note if k == x0.shape[0] else f"the first {k} of {note}"
        emit(("images", note))

        def progress(done, total):
            emit(("progress", done, total))
            return cancelled()

        model.eval()
        result = ode_log_likelihood(model, x0[:k], schedule, objective=objective, probes=settings["probes"],
                                    rtol=settings["rtol"], atol=settings["atol"], seed=seed, progress=progress)
        return result, note

    return work


def side_by_side(vlb: VLBResult | None, ode: LikelihoodResult | None) -> str:
    """The two numbers, each with what it is, as the readout shows them."""
    left = f"VLB ≥ NLL: <b>{vlb.total:.4f}</b> bits/dim ({vlb.images} images)" if vlb is not None else \
        "VLB: not computed yet"
    if ode is None:
        return f"{left}<br>ODE NLL: not computed yet"
    mc = f", Monte-Carlo ± {ode.probe_stderr:.4f}" if ode.probe_stderr is not None else ""
    se = f" ± {ode.stderr:.4f}" if ode.images > 1 else ""
    return (f"{left}<br>ODE NLL: <b>{ode.mean:.4f}{se}</b> bits/dim (s.e. over {ode.images} images × "
            f"{ode.probes} probes{mc}; {ode.nfe} model calls, tolerance {ode.rtol:g}, σ {ode.sigma_min:.3g} → "
            f"{ode.sigma_max:.3g})")
