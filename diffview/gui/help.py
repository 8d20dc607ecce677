"""Help ▸ "What am I looking at?" (F1): one short page per tab (what is plotted, the equation, what to try and
the paper it comes from), and Help ▸ Keyboard shortcuts, listed from the window's own actions."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

__all__ = ["HELP_PAGES", "HelpPage", "help_html", "shortcuts_html", "show_html"]


@dataclass(frozen=True)
class HelpPage:
    shows: str  # what is plotted
    equation: str  # the equation behind it (HTML)
    try_: str  # something to do that makes the idea visible
    paper: str  # where it comes from


HELP_PAGES: dict[str, HelpPage] = {
    "Data": HelpPage(
        "A sample of the training images as the model sees them, with the dataset's size, classes and pixel "
        "statistics. The forward process starts from these.",
        "x<sub>0</sub> = pixel / 127.5 − 1, so every pixel lies in [−1, 1]",
        "Choose another built-in dataset in Settings, or drop a folder of your own images on the window.",
        "Ho, Jain &amp; Abbeel 2020, <i>Denoising Diffusion Probabilistic Models</i>, §3.3 (data scaled to [−1, 1])."),
    "Forward process": HelpPage(
        "The same images noised to timestep t with one fixed ε, and the histogram of their pixels beside the "
        "standard normal density.",
        "q(x<sub>t</sub> | x<sub>0</sub>) = N(√ᾱ<sub>t</sub> x<sub>0</sub>, (1 − ᾱ<sub>t</sub>) I)  (DDPM eq. 4)",
        "Drag t to 900 and watch the histogram match N(0, 1); then switch the schedule between linear and cosine "
        "and see how much longer cosine keeps the images recognisable.",
        "Ho et al. 2020, eq. 4; the cosine schedule: Nichol &amp; Dhariwal 2021, eq. 17."),
    "Schedule": HelpPage(
        "β<sub>t</sub>, ᾱ<sub>t</sub>, the signal and noise levels √ᾱ<sub>t</sub> and √(1−ᾱ<sub>t</sub>) and "
        "the log signal-to-noise ratio against t, for the schedule chosen in Settings.",
        "ᾱ<sub>t</sub> = ∏<sub>s≤t</sub> (1 − β<sub>s</sub>),  SNR<sub>t</sub> = ᾱ<sub>t</sub> / (1 − ᾱ<sub>t</sub>)",
        "Compare linear and cosine: linear leaves almost no signal after t ≈ 600 of 1000, while cosine's ᾱ_t "
        "falls about linearly in the middle and changes slowly at both ends. Drag the white marker to move t in "
        "every tab.",
        "Ho et al. 2020 (linear β from 10⁻⁴ to 0.02); Nichol &amp; Dhariwal 2021, §3.2 (cosine)."),
    "Training": HelpPage(
        "The loss per step (raw and smoothed), the loss by timestep t in bins, the learning rate, and sample "
        "grids from the EMA model at a fixed seed as training goes.",
        "L = E<sub>t, x<sub>0</sub>, ε</sub> w(t) ‖target − f<sub>θ</sub>(x<sub>t</sub>, t)‖², target ε (DDPM eq. 14), "
        "x<sub>0</sub> or v = √ᾱ<sub>t</sub> ε − √(1−ᾱ<sub>t</sub>) x<sub>0</sub>; w(t) = 1 (none), Min-SNR-5, or "
        "adaptive (the default): one over the running mean loss at t, so every t pulls equally (EDM2's balance). "
        "The plots show the unweighted loss.",
        "Press Train (Ctrl+T) and watch the loss by t: the smallest t are the hardest for ε-prediction. Scrub the "
        "preview slider to see the digits form.",
        "Ho et al. 2020, Algorithm 1; v-prediction: Salimans &amp; Ho 2022."),
    "Sampling": HelpPage(
        "The reverse process step by step: x<sub>t</sub> beside the model's estimate x̂<sub>0</sub> of the clean "
        "image it is heading for, with the sampler's update written out.",
        "x̂<sub>0</sub> = (x<sub>t</sub> − √(1−ᾱ<sub>t</sub>) ε<sub>θ</sub>) / √ᾱ<sub>t</sub>;  DDPM: "
        "x<sub>t−1</sub> = μ̃<sub>t</sub>(x<sub>t</sub>, x̂<sub>0</sub>) + σ<sub>t</sub> z",
        "Sample (Ctrl+R), then drag the frame slider back: x̂<sub>0</sub> settles long before x<sub>t</sub> does. "
        "Try DDIM with η = 0 and 20 steps against DDPM's 1000.",
        "Ho et al. 2020, Algorithm 2; DDIM: Song, Meng &amp; Ermon 2021, eq. 12; DPM-Solver++: Lu et al. 2022."),
    "Bound": HelpPage(
        "The variational bound term by term (L<sub>T</sub>, every L<sub>t−1</sub> and L<sub>0</sub>) in bits per "
        "dimension on the data's own images, the training loss by t beside it, and the exact likelihood of the "
        "probability-flow ODE.",
        "−log p(x<sub>0</sub>) ≤ L<sub>T</sub> + Σ<sub>t</sub> L<sub>t−1</sub> + L<sub>0</sub>  (DDPM eq. 5)",
        "Compute the bound on a half-trained model and again later: the terms at small t fall the most.",
        "Ho et al. 2020, eq. 5; Nichol &amp; Dhariwal 2021 (learned variances); the ODE: Song et al. 2021."),
    "Loss from the bound": HelpPage(
        "The derivation of L<sub>simple</sub> from the bound, read ① → ⑦: entropy and KL of Gaussians, the "
        "bound as KLs, the KL's means, the same in ε, and the weight that is dropped.",
        "L<sub>t−1</sub> = ‖μ̃<sub>t</sub> − μ<sub>θ</sub>‖² / 2σ<sub>t</sub>² + C  (DDPM eq. 8) → eq. 12 → eq. 14",
        "Drag the dashed lines in the Gaussians panel: the KL is zero only where the two curves coincide.",
        "Ho et al. 2020, §3.2."),
    "Samplers": HelpPage(
        "Every sampler at each budget of network evaluations (NFE) from one x<sub>T</sub>, scored against a "
        "250-step DPM-Solver++(2M) reference, so they are compared at equal cost.",
        "DDIM: x<sub>t′</sub> = √ᾱ<sub>t′</sub> x̂<sub>0</sub> + √(1−ᾱ<sub>t′</sub>−σ²) ε<sub>θ</sub> + σ z; Heun "
        "and DPM-Solver++ on the ODE dx/dσ = ε̂",
        "Run the comparison at NFE 10: the second-order solvers are far closer to the reference than DDIM.",
        "Song et al. 2021 (DDIM); Karras et al. 2022 (Heun, σ spacing); Lu et al. 2022 (DPM-Solver++)."),
    "Guidance": HelpPage(
        "For a class-conditional model: rows of classes, columns of guidance scales S, each row from one "
        "x<sub>T</sub>, so the columns differ only by S.",
        "ε̃ = ε<sub>u</sub> + S (ε<sub>c</sub> − ε<sub>u</sub>)  (S = 0 unconditional, 1 conditional)",
        "Sweep S from 0 to 5: the samples grow more typical of their class and less varied.",
        "Ho &amp; Salimans 2021, <i>Classifier-Free Diffusion Guidance</i>."),
    "Memorisation": HelpPage(
        "Generated samples beside their nearest training images, with the distance, and which samples are near "
        "copies of the data.",
        "d = ‖x̂ − x<sub>nn</sub>‖₂; near copy: d &lt; ⅓ of the mean distance to the nearest training images",
        "Train a large model on a small folder for long and look again: near copies appear.",
        "Carlini et al. 2023, <i>Extracting Training Data from Diffusion Models</i>."),
    "Noise & denoise": HelpPage(
        "An image noised to t and denoised back from there with the reverse process (SDEdit): small t keeps the "
        "image, large t keeps only its rough layout.",
        "x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε, then p<sub>θ</sub> from t down to 0",
        "Pick an image and raise t from 200 to 800: the result drifts from a copy to a new sample.",
        "Meng et al. 2022, <i>SDEdit</i>."),
    "Inversion": HelpPage(
        "DDIM run backwards: an image's x<sub>T</sub>, its reconstruction and the error by step count, and "
        "interpolations between two images' or two seeds' x<sub>T</sub> by slerp.",
        "x<sub>t′</sub> = √ᾱ<sub>t′</sub> x̂<sub>0</sub> + √(1−ᾱ<sub>t′</sub>) ε̂ up the timesteps, η = 0",
        "Invert with 5 steps and then 100: the reconstruction error falls to a few grey levels.",
        "Song et al. 2021, eq. 12 with σ = 0; slerp: Shoemake 1985."),
    "2D diffusion": HelpPage(
        "The whole story on 2D points, where every density can be drawn: the forward process, reverse "
        "trajectories, the score field with the true density's level sets, Langevin dynamics, and guidance.",
        "s<sub>θ</sub>(x, t) = −ε<sub>θ</sub>(x, t) / √(1−ᾱ<sub>t</sub>);  "
        "Langevin: x ← x + (δ<sub>t</sub>/2) s<sub>θ</sub> + √δ<sub>t</sub> z, δ<sub>t</sub> = δ(1−ᾱ<sub>t</sub>)",
        "Train on gaussians8 for a minute, then compare the learned score arrows with the true level sets.",
        "Song &amp; Ermon 2019 (score matching, Langevin); Ho et al. 2020; Song et al. 2021 (the SDE view)."),
}


def help_html(tab: str) -> str:
    """The help page of the tab named ``tab`` (its tab text, "&&" read as "&"), as HTML."""
    name = tab.replace("&&", "&")
    page = HELP_PAGES.get(name)
    if page is None:
        return f"<h2>{name}</h2><p>No help page for this tab yet.</p>"
    return (f"<h2>{name.replace('&', '&amp;')}</h2><h3>What is plotted</h3><p>{page.shows}</p>"
            f"<h3>The equation</h3><p>{page.equation}</p><h3>What to try</h3><p>{page.try_}</p>"
            f"<h3>From</h3><p>{page.paper}</p>")


def shortcuts_html(actions) -> str:
    """A table of every action in ``actions`` (QActions) that has a shortcut: the keys and what they do."""
    rows = []
    for a in actions:
        keys = a.shortcut().toString(QKeySequence.NativeText)
        if keys:
            rows.append(f"<tr><td><b>{keys}</b></td><td>{a.text().replace('&', '')}</td></tr>")
    return "<h2>Keyboard shortcuts</h2><table cellpadding='4'>" + "".join(rows) + "</table>"


def show_html(parent: QWidget, title: str, html: str) -> QDialog:
    """A small non-modal window that shows ``html``; closed with Escape or Close."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setAttribute(Qt.WA_DeleteOnClose)
    text = QTextBrowser()
    text.setHtml(html)
    text.setOpenExternalLinks(True)
    buttons = QDialogButtonBox(QDialogButtonBox.Close)
    buttons.rejected.connect(dialog.close)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.resize(560, 480)
    dialog.show()
    return dialog
