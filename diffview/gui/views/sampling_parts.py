"""The Sampling tab's ε panel at work: ε_c and ε_u at one step of a guided trajectory, computed on a worker.

:class:`EpsPartsFollower` runs :func:`~diffview.core.analysis.guidance.eps_parts` one request at a time; a
request made while one computes replaces any waiting one and runs next, so the panel ends on the step the
slider rests on. A new trajectory (``reset``) makes the answers still on their way stale.
"""

from __future__ import annotations

import torch

from diffview.core.analysis.guidance import eps_parts
from diffview.core.runs.handle import ModelHandle
from diffview.gui.widgets.eps_parts import EpsPartsPanel
from diffview.gui.workers.jobs import Job, Jobs

FINAL_NOTE = "x<sub>0</sub> has no model call: the last step's. "


class EpsPartsFollower:
    """Fills ``panel`` with ε_c, ε_u and ε_c − ε_u for the requested step; ``shown`` is (frame, t, ε_c, ε_u)."""

    def __init__(self, panel: EpsPartsPanel, jobs: Jobs):
        self.panel, self.jobs = panel, jobs
        self.shown: tuple | None = None
        self._job: Job | None = None
        self._waiting: tuple | None = None  # the newest request made while one computed
        self._generation = 0  # bumped by reset: a trajectory sampled since makes an answer stale

    @property
    def busy(self) -> bool:
        return self._job is not None

    def reset(self) -> None:
        self.shown, self._waiting = None, None
        self._generation += 1

    def request(self, frame: int, handle: ModelHandle, x_t: torch.Tensor, t: int, label: int, class_name: str,
                scale: float, final: bool) -> None:
        """ε_c and ε_u at (x_t, t) for the class ``label``; ``final``: the slider is on x_0, shown by its last step."""
        args = (frame, handle, x_t, t, label, class_name, scale, final)
        if self._job is not None:
            self._waiting = args
            return
        generation = self._generation
        self.panel.set_note(f"Computing ε_c and ε_u at t = {t}…")

        def done(result, error):
            self._job = None
            if error:
                self.panel.set_note(f"Could not compute ε_c and ε_u: {error}")
            elif generation == self._generation:
                eps_c, eps_u = result
                self.shown = (frame, t, eps_c, eps_u)
                self.panel.set_parts(eps_c, eps_u, t, class_name, scale)
                if final:
                    self.panel.set_note(FINAL_NOTE + self.panel.note.text())
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                self.request(*waiting)

        self._job = self.jobs.start(lambda emit, cancelled: eps_parts(handle, x_t, t, label), "diffview-eps-parts",
                                    None, done)


__all__ = ["EpsPartsFollower"]
