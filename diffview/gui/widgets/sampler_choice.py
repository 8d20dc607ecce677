"""The sampler and timestep-spacing pickers every tab that samples shares: the core's SAMPLERS and SPACINGS by
the names people know them by, with tooltips that say what each one is and costs."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox

from diffview.core.sampling import SAMPLER_NAMES, SPACINGS, default_steps, nfe
from diffview.core.schedule import NoiseSchedule

SAMPLER_TIPS = {
    "ddim": "DDIM (Song et al. 2021, eq. 12): one evaluation a step; η = 0 is Euler's method on the "
            "probability-flow ODE, η = 1 adds DDPM's ancestral noise",
    "ddpm": "DDPM (Ho et al. 2020, Alg. 2): ancestral sampling, one evaluation a step; fewer than T steps "
            "respace the betas (Nichol & Dhariwal 2021)",
    "heun": "Heun's method on the probability-flow ODE (Karras et al. 2022, Alg. 1): second order, two "
            "evaluations a step where it corrects; churn S_churn > 0 adds noise each step (Alg. 2)",
    "dpmpp-2m": "DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): second-order multistep in log-SNR, one evaluation "
                "a step",
}
SPACING_TIPS = {
    "trailing": "round(T − i·T/steps) − 1: starts at T−1 (Lin et al. 2024)",
    "leading": "(steps−1−i)·(T // steps): DDIM's original spacing, ends at 0",
    "linspace": "evenly from T−1 to 0",
    "karras": "σ_t on Karras et al.'s ρ = 7 ramp from σ_max to σ_min (eq. 5), nearest timesteps",
}


ORDER = ("ddim", "ddpm", "heun", "dpmpp-2m")  # DDIM first: the default of every tab that samples


class SamplerCombo(QComboBox):
    """The samplers (``key()`` gives the core's name, e.g. "dpmpp-2m"), or only ``keys`` of them."""

    def __init__(self, keys=ORDER, parent=None):
        super().__init__(parent)
        for i, key in enumerate(keys):
            self.addItem(SAMPLER_NAMES[key], key)
            self.setItemData(i, SAMPLER_TIPS[key], 3)  # Qt.ToolTipRole
        self.setToolTip("The sampler: hover an entry for what it is and what a step costs")

    def key(self) -> str:
        return self.currentData()

    def set_key(self, key: str) -> None:
        self.setCurrentIndex(self.findData(key))


class SpacingCombo(QComboBox):
    """The timestep spacings (``currentText()`` is the core's name)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        for i, key in enumerate(SPACINGS):
            self.addItem(key)
            self.setItemData(i, SPACING_TIPS[key], 3)
        self.setToolTip("Which of the T timesteps a sampler with fewer steps visits")


class SamplerControls:
    """A sampler with its steps, DDIM's η, the spacing and Heun's S_churn, as rows of a form; each control is
    enabled only for the sampler it belongs to, and a new sampler gets its default steps (core default_steps)."""

    def __init__(self, keys=ORDER):
        self.sampler = SamplerCombo(keys)
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(default_steps(self.sampler.key(), 1000))
        self.steps.setToolTip("Steps of the reverse process; its cost is the NFE (network evaluations), shown "
                              "when it runs")
        self.eta = QDoubleSpinBox()
        self.eta.setRange(0.0, 1.0)
        self.eta.setSingleStep(0.1)
        self.eta.setToolTip("DDIM η: 0 is deterministic, 1 matches DDPM's ancestral noise (eq. 16)")
        self.spacing = SpacingCombo()
        self.churn = QDoubleSpinBox()
        self.churn.setRange(0.0, 200.0)
        self.churn.setToolTip("Heun's S_churn (Karras et al. 2022, Alg. 2): each step first adds noise up to "
                              "σ̂ = (1 + γ) σ_t, γ = min(S_churn/N, √2 − 1); 0 is deterministic (Alg. 1)")
        self.sampler.currentIndexChanged.connect(self._changed)
        self._changed()

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("η (DDIM)", self.eta)
        form.addRow("Spacing", self.spacing)
        form.addRow("S_churn (Heun)", self.churn)

    def set_timesteps(self, T: int) -> None:
        self.steps.setMaximum(T)
        if self.sampler.key() == "ddpm":
            self.steps.setValue(T)

    def _changed(self, _index: int = 0) -> None:
        key = self.sampler.key()
        self.eta.setEnabled(key == "ddim")
        self.churn.setEnabled(key == "heun")
        self.steps.setValue(default_steps(key, self.steps.maximum()))

    def settings(self, schedule: NoiseSchedule) -> dict:
        """The chosen sampler's arguments for iter_sample (steps at most T) and their ``nfe``; ValueError for
        a combination that cannot run (e.g. leading spacing from t_start)."""
        key, spacing = self.sampler.key(), self.spacing.currentText()
        steps = min(self.steps.value(), schedule.timesteps)
        return {"sampler": key, "steps": steps, "eta": self.eta.value(), "spacing": spacing,
                "s_churn": self.churn.value(), "nfe": nfe(key, steps, schedule, spacing, s_churn=self.churn.value())}


__all__ = ["SAMPLER_TIPS", "SPACING_TIPS", "SamplerCombo", "SamplerControls", "SpacingCombo"]
