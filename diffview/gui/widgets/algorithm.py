"""The algorithms as they run: DDPM's Algorithm 1 (training) and Algorithm 2 (sampling) and DDIM's update
(eq. 12) typeset line by line, the line being executed highlighted at a pace a person can follow.

Training runs every line many times a second, so the panel does not try to keep up: it walks one step's
lines at ``INTERVAL_MS`` per line with the latest step's numbers, and starts the next walk once the last has
been shown. Highlights go through a short queue that a timer drains; a queue that overflows drops the oldest
entries after the next one, so what is shown is always in the order it ran. A hidden panel does no work at all.

Each symbol is a link: clicking it emits ``symbol_clicked(name)`` and the main window shows where that
symbol is drawn (``flash`` marks the widget or plot for a moment).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from diffview.core.sampling import SAMPLER_NAMES

INTERVAL_MS = 300  # one highlighted line at most this often
MAX_PENDING = 8  # highlights waiting to be shown; beyond this the oldest are dropped
HISTORY = 2000
LINK = "color: #1a62c4; text-decoration: none;"
LINE = "background: transparent; padding: 2px 4px;"
BAR = "background: #ffefc2; border-left: 3px solid #e08a00;"  # the highlight, drawn under the current line


def sym(name: str, text: str) -> str:
    """``text`` (rich text) as a link named ``name``."""
    return f'<a href="{name}" style="{LINK}">{text}</a>'


X0, XT, X_T, T, EPS, EPS_T = (sym("x0", "x<sub>0</sub>"), sym("x_t", "x<sub>t</sub>"), sym("x_T", "x<sub>T</sub>"),
                              sym("t", "t"), sym("eps", "ε"), sym("eps_theta", "ε<sub>θ</sub>"))
X0_PRED, Z, GRAD = sym("x0_pred", "x̂<sub>0</sub>"), sym("z", "z"), sym("grad", "gradient descent step")


@dataclass(frozen=True)
class Algorithm:
    title: str
    lines: tuple[str, ...]  # rich text, line 1 first
    note: str  # what the highlight means, under the lines


TRAINING = Algorithm(
    "Algorithm 1: Training (DDPM)",
    ("<b>repeat</b>",
     f"{X0} ∼ q({X0})",
     f"{T} ∼ Uniform({{1, …, T}})",
     f"{EPS} ∼ N(0, I)",
     f"Take {GRAD} on<br>&nbsp;&nbsp;∇<sub>θ</sub> ‖{EPS} − {EPS_T}(√ᾱ<sub>t</sub> {X0} + √(1−ᾱ<sub>t</sub>) {EPS}, "
     f"{T})‖²",
     "<b>until</b> converged"),
    "The trainer runs lines 2–5 for a whole batch, many steps a second; the highlight walks one step at a time "
    "with the latest step's numbers. With target x<sub>0</sub> or v the network predicts that instead of ε; "
    "with a loss weighting each sample's ‖·‖² is multiplied by its t's weight before the step (adaptive, the "
    "default: one over the running mean loss at that t). The curves show the unweighted loss.")
DDPM_SAMPLING = Algorithm(
    "Algorithm 2: Sampling (DDPM)",
    (f"{X_T} ∼ N(0, I)",
     f"<b>for</b> {T} = T, …, 1 <b>do</b>",
     f"{Z} ∼ N(0, I) if {T} > 1, else {Z} = 0",
     f"x<sub>t−1</sub> = (1/√α<sub>t</sub>) ({XT} − (1−α<sub>t</sub>)/√(1−ᾱ<sub>t</sub>) {EPS_T}({XT}, {T})) "
     f"+ σ<sub>t</sub> {Z}",
     "<b>end for</b>",
     f"<b>return</b> {X0}"),
    "diffview computes line 4 as μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) with x̂<sub>0</sub> clipped to "
    "[−1, 1] (the same mean without clipping); σ²<sub>t</sub> = β̃<sub>t</sub> or β<sub>t</sub>.")
DDIM_SAMPLING = Algorithm(
    "DDIM sampling (Song et al. 2021, eq. 12)",
    (f"{X_T} ∼ N(0, I)",
     f"<b>for</b> {T} = τ<sub>S</sub>, …, τ<sub>1</sub> <b>do</b>  (t′ the next, smaller one)",
     f"{X0_PRED} = ({XT} − √(1−ᾱ<sub>t</sub>) {EPS_T}({XT}, {T})) / √ᾱ<sub>t</sub>   (“predicted x<sub>0</sub>”)",
     f"x<sub>t′</sub> = √ᾱ<sub>t′</sub> {X0_PRED} + √(1−ᾱ<sub>t′</sub>−σ²<sub>t</sub>) {EPS_T} + σ<sub>t</sub> {Z}",
     "<b>end for</b>",
     f"<b>return</b> {X0}"),
    "σ<sub>t</sub> = η √((1−ᾱ<sub>t′</sub>)/(1−ᾱ<sub>t</sub>)) √(1−ᾱ<sub>t</sub>/ᾱ<sub>t′</sub>) (eq. 16); "
    "η = 0 is deterministic.")
HEUN_SAMPLING = Algorithm(
    "Heun's method on the probability-flow ODE (Karras et al. 2022, Alg. 1)",
    (f"{X_T} ∼ N(0, I)",
     f"<b>for</b> {T} = t<sub>0</sub>, …, t<sub>N−1</sub> <b>do</b>  (σ = √((1−ᾱ<sub>t</sub>)/ᾱ<sub>t</sub>), "
     "t′ the next)",
     f"d = {EPS_T}({XT}, {T});  x̃ = √ᾱ<sub>t′</sub> {X0_PRED} + √(1−ᾱ<sub>t′</sub>) d   (Euler: DDIM, η = 0)",
     f"<b>if</b> σ<sub>t′</sub> ≠ 0: x<sub>t′</sub> = √ᾱ<sub>t′</sub> ({XT}/√ᾱ<sub>t</sub> + (σ<sub>t′</sub> − "
     f"σ<sub>t</sub>)(d + {EPS_T}(x̃, t′))/2), else x̃",
     "<b>end for</b>",
     f"<b>return</b> {X0}"),
    "Two evaluations a step, one on the last. A step far above the data's scale (σ<sub>t</sub> &gt; 0.5 with "
    "σ<sub>t</sub>/σ<sub>t′</sub> ≥ 3) stays Euler's, where the trapezoid is the worse of the two.")
DPMPP_SAMPLING = Algorithm(
    "DPM-Solver++(2M) (Lu et al. 2022, Alg. 2)",
    (f"{X_T} ∼ N(0, I)",
     f"<b>for</b> {T} = t<sub>0</sub>, …, t<sub>N−1</sub> <b>do</b>  (λ = log(√ᾱ/√(1−ᾱ)), h = λ<sub>t′</sub> − "
     "λ<sub>t</sub>)",
     f"{X0_PRED} from {EPS_T}({XT}, {T});  D = (1 + 1/2r) {X0_PRED} − (1/2r) x̂<sub>0</sub><sup>prev</sup>, "
     "r = h<sub>prev</sub>/h",
     f"x<sub>t′</sub> = (√(1−ᾱ<sub>t′</sub>)/√(1−ᾱ<sub>t</sub>)) {XT} − √ᾱ<sub>t′</sub> (e<sup>−h</sup> − 1) D",
     "<b>end for</b>",
     f"<b>return</b> {X0}"),
    "One evaluation a step; D = x̂<sub>0</sub> (first order) on the first step and on the last, which returns "
    "x̂<sub>0</sub> itself.")
ALGORITHMS = {"train": TRAINING, "ddpm": DDPM_SAMPLING, "ddim": DDIM_SAMPLING, "heun": HEUN_SAMPLING,
              "dpmpp-2m": DPMPP_SAMPLING}


class AlgorithmPanel(QFrame):
    """An algorithm's lines, one highlighted; ``highlight(line)`` asks for a line (1-based), shown in order at
    most every ``INTERVAL_MS``. ``shown`` records the lines highlighted, oldest first."""

    symbol_clicked = Signal(str)

    def __init__(self, key: str = "train", width: int = 340, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.setFixedWidth(width)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold; padding: 2px;")
        self.title.setWordWrap(True)
        self.grid = QGridLayout()
        self.grid.setVerticalSpacing(1)
        self.grid.setColumnStretch(1, 1)  # the lines take the width; their numbers only what they need
        self.annotation = QLabel(" ")
        self.annotation.setWordWrap(True)
        # A fixed size: a new text then repaints the label and never lays out the window again.
        self.annotation.setFixedSize(width - 24, 36)
        self.annotation.setStyleSheet("font-family: monospace; font-size: 11px; color: #a65400; padding: 2px 4px;")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #9aa0a6; font-size: 11px; padding: 2px 4px;")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self.grid)
        layout.addWidget(self.annotation)
        layout.addWidget(self.note)
        layout.addStretch(1)
        self.lines: list[QLabel] = []  # one label per line of the algorithm
        self.numbers: list[QLabel] = []
        self.key = ""
        self.current = 0
        self.shown: deque[int] = deque(maxlen=HISTORY)
        self.pending: deque[tuple[int, str]] = deque()  # at most MAX_PENDING: see highlight
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self._next)
        # The highlight is one widget under the lines, moved to the current one: no restyling, no layout. It is
        # never hidden, only emptied (a zero rect): showing a hidden child makes Qt lay out the whole window again,
        # 40-60 ms on the GUI thread at a run's first step.
        self.bar = QFrame(self)  # emptied by set_algorithm below
        self.bar.setStyleSheet(BAR)
        self.toggle = QToolButton()
        self.toggle.setCheckable(True)
        self.toggle.setChecked(True)
        self.toggle.toggled.connect(self.setVisible)
        self.set_algorithm(key)

    def set_algorithm(self, key: str) -> None:
        """Show ``ALGORITHMS[key]`` (train, ddpm, ddim, heun or dpmpp-2m), nothing highlighted."""
        if key == self.key:
            return
        self.key, algo = key, ALGORITHMS[key]
        self.title.setText(algo.title)
        self.toggle.setText(algo.title.split(":")[0].split(" (")[0])
        self.toggle.setToolTip(f"Show or hide {algo.title}")
        self.note.setText(algo.note)
        for label in self.lines + self.numbers:
            self.grid.removeWidget(label)
            label.deleteLater()
        self.lines, self.numbers = [], []
        for i, text in enumerate(algo.lines, 1):
            number = QLabel(f"{i}:")
            number.setStyleSheet("color: #9aa0a6;")
            label = QLabel(text)
            label.setTextFormat(Qt.RichText)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.LinksAccessibleByMouse)
            label.linkActivated.connect(self.symbol_clicked)
            label.setStyleSheet(LINE)
            self.grid.addWidget(number, i, 0, Qt.AlignTop)
            self.grid.addWidget(label, i, 1)
            self.lines.append(label)
            self.numbers.append(number)
        self.pending.clear()
        self.current = 0
        self._place_bar()

    def highlight(self, line: int, note: str = "") -> None:
        """Ask for ``line`` to be highlighted with ``note`` under the lines; shown at once when the panel has
        been idle for an interval, else after the lines asked before it."""
        if not self.isVisible():
            return
        if len(self.pending) >= MAX_PENDING:
            del self.pending[1]  # the oldest after the next one: a run's first line is never lost
        self.pending.append((line, note))
        if not self.timer.isActive():
            self._next()
            self.timer.start()

    @property
    def idle(self) -> bool:
        """Nothing is waiting to be highlighted."""
        return not self.pending

    def _next(self) -> None:
        if not self.pending:
            self.timer.stop()
            return
        line, note = self.pending.popleft()
        self.current = line
        self._place_bar()
        self.annotation.setText(note or " ")
        self.shown.append(line)

    def _place_bar(self) -> None:
        if 1 <= self.current <= len(self.lines):
            self.bar.setGeometry(self.lines[self.current - 1].geometry())
            self.bar.lower()
        else:
            self.bar.setGeometry(QRect())

    @property
    def highlighted(self) -> bool:
        """Whether a line is highlighted (the bar under it has a size)."""
        return not self.bar.geometry().isEmpty()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_bar()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._place_bar)  # once the lines are laid out


class TrainingFollower:
    """Algorithm 1 beside the training: line 1 as the first steps arrive, then lines 2–5 of the newest step each
    time the panel has shown the previous walk, line 6 at the end. It reads the controller's batched step
    signals only (O(1) per batch: the newest event), never the trainer."""

    def __init__(self, panel: AlgorithmPanel):
        self.panel = panel
        self.beginning = False

    def started(self) -> None:
        self.beginning = True  # shown with the first steps: the tab that shows the panel may not be up yet

    def on_steps(self, events: list) -> None:
        if not events or not self.panel.idle or not self.panel.isVisible():
            return
        if self.beginning:
            self.beginning = False
            self.panel.highlight(1, "training started")
        ev = events[-1]
        ts = [int(t) + 1 for t in ev.timesteps[:4]]  # the paper's 1-based t
        more = ", …" if len(ev.timesteps) > 4 else ""
        self.panel.highlight(2, f"step {ev.step:,}: a batch of {len(ev.timesteps)} training images")
        self.panel.highlight(3, f"t = {', '.join(map(str, ts))}{more} (paper's 1…T; index t−1)")
        self.panel.highlight(4, "one N(0, 1) draw per pixel of every image")
        self.panel.highlight(5, f"loss {ev.loss:.4f}, learning rate {ev.lr:.2e}")

    def finished(self, done=None) -> None:
        self.beginning = False
        reason = getattr(done, "reason", "stopped")
        self.panel.highlight(6, f"{reason} at step {getattr(done, 'step', 0):,}")


class SamplingFollower:
    """Algorithm 2 (DDPM), DDIM's, Heun's or DPM-Solver++'s loop beside the sampling, from the sampling job's
    frames: line 1 at the start; lines 2–4 of the first step, then of the newest step each time the panel has
    shown the previous walk (a fast sampler runs many steps per walk); 5 and 6 after the last step."""

    def __init__(self, panel: AlgorithmPanel):
        self.panel = panel
        self.walked = False  # whether this run's first step has been walked

    def started(self, sampler: str, steps: int) -> None:
        self.panel.set_algorithm(sampler if sampler in ALGORITHMS else "ddpm")
        self.panel.highlight(1, f"{SAMPLER_NAMES.get(sampler, sampler)}, {steps} steps")
        self.walked = False

    def on_frames(self, frames: list) -> None:
        steps = [f for f in frames if f[1] >= 0]
        if steps and (self.panel.idle or not self.walked):
            self.walked = True
            index, t = steps[-1][0], steps[-1][1]
            self.panel.highlight(2, f"step {index + 1}: t = {t + 1} (index {t})")
            self.panel.highlight(3, "z ∼ N(0, I) drawn" if self.panel.key == "ddpm" else "x̂₀ from ε_θ(x_t, t)")
            self.panel.highlight(4, f"x_t at index {t} → the next, smaller t")
        for index, t, *_ in frames:
            if t < 0:
                self.panel.highlight(5, f"after {index} steps")
                self.panel.highlight(6, "x_0: the sample")


def flash(target, ms: int = 900) -> None:
    """Mark a widget (a border over it) or a pyqtgraph plot (its background) for ``ms`` milliseconds."""
    if isinstance(target, pg.PlotItem):
        box = target.getViewBox()
        box.setBackgroundColor((255, 176, 80, 60))
        QTimer.singleShot(ms, box, lambda: box.setBackgroundColor(None))  # cancelled if the plot goes first
        return
    if not isinstance(target, QWidget):
        return
    frame = QFrame(target)
    frame.setAttribute(Qt.WA_TransparentForMouseEvents)
    frame.setStyleSheet("border: 3px solid #ffb050; background: rgba(255, 176, 80, 30);")
    frame.setGeometry(target.rect())
    frame.show()
    frame.raise_()
    QTimer.singleShot(ms, frame, frame.deleteLater)


__all__ = ["ALGORITHMS", "AlgorithmPanel", "INTERVAL_MS", "SamplingFollower", "TrainingFollower", "flash"]
