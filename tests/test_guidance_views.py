"""A class label and a guidance scale S in the Samplers, Memorisation and Noise & denoise tabs: the shared
class controls (gui/widgets/guidance.py), the core functions' label and S, and the tabs' jobs."""

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from diffview.core.analysis.samplers import SamplerSpec, compare_samplers, quality_by_nfe  # noqa: E402
from diffview.core.analysis.sdedit import sdedit  # noqa: E402
from diffview.core.data.images import ImageDataset  # noqa: E402
from diffview.core.io.export import to_uint8  # noqa: E402
from diffview.core.models.unet import build_unet  # noqa: E402
from diffview.core.runs.handle import FromTraining, ImageShape, ModelHandle  # noqa: E402
from diffview.core.sampling import noise_from_seed  # noqa: E402
from diffview.core.schedule import make_schedule  # noqa: E402
from diffview.gui.views.job_view import float_images  # noqa: E402
from diffview.gui.views.memorise import MemoriseView  # noqa: E402
from diffview.gui.views.samplers import CompareView  # noqa: E402
from diffview.gui.views.sdedit import SDEditView  # noqa: E402
from diffview.gui.widgets.guidance import UNCONDITIONAL, GuidanceControls  # noqa: E402

T = 50
CLASSES = ("zero", "one", "two")
SPECS = [SamplerSpec("DDIM", "ddim", 5), SamplerSpec("DDPM", "ddpm", 5, 0.0)]


@pytest.fixture(scope="module")
def model():
    """A conditional tiny UNet whose outputs depend on the class: the zero-initialised layers drawn at random,
    and each class's embedding (and ∅'s, the last row) a clearly different constant."""
    torch.manual_seed(0)
    m = build_unet("tiny", 1, 8, num_classes=len(CLASSES)).eval()
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                torch.nn.init.normal_(p, std=0.05)
        table = m.class_emb.table.weight
        table.copy_(torch.linspace(-2, 2, len(CLASSES) + 1)[:, None].expand_as(table))
    return m


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("cosine", T)


@pytest.fixture(scope="module")
def dataset():
    g = torch.Generator().manual_seed(1)
    return ImageDataset(torch.randint(0, 256, (12, 1, 8, 8), generator=g, dtype=torch.uint8))


def handle_of(model, schedule, classes=CLASSES):
    return ModelHandle(model, schedule, "eps", ImageShape(1, 8), FromTraining(1), "a conditional test model",
                       class_names=classes)


def wire(view, handle, dataset, classes=True):
    view.model_source = lambda ema=True: handle
    view.data_source = lambda: (dataset, None)
    if classes:  # the session's names, known before any job
        view.classes_source = lambda: handle.class_names
        view.refresh_guidance()
    return view


def finish(qtbot, view):
    qtbot.waitUntil(lambda: not view.busy, timeout=60_000)


def far(a, b):
    """Clearly apart: far beyond float32 round-off (1e-5 here)."""
    return (torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max() > 1e-2


def as_class(model, k):
    """The conditional network at the fixed class k, as a plain (x, t) model: what S = 1 samples."""
    return lambda x, t: model(x, t, torch.full((len(x),), k, dtype=torch.long))


# ----------------------------------------------------------------------------- the controls
def test_the_controls_list_the_classes_after_the_null_class_and_give_label_and_scale(qtbot, model, schedule):
    g = GuidanceControls()
    qtbot.addWidget(g)
    assert not g.isEnabled() and g.label() is None and g.label_box.currentText() == "—"
    assert (g.spin.minimum(), g.spin.maximum(), g.spin.singleStep(), g.scale(), g.slider.maximum()) == (0, 10, 0.1, 3, 100)
    g.set_handle(handle_of(model, schedule))
    assert g.isEnabled() and [g.label_box.itemText(i) for i in range(g.label_box.count())] == [UNCONDITIONAL,
                                                                                               *CLASSES]
    assert g.label() is None and not g.spin.isEnabled()  # ∅: S has nothing to guide towards
    g.set_label(2)
    g.spin.setValue(4.5)
    assert (g.label(), g.scale(), g.spin.isEnabled()) == (2, 4.5, True)
    assert g.describe() == "class two, guided at S = 4.5"
    g.set_classes(("x", "two"))  # another model: the class of that name is kept, at its own index
    assert g.label() == 1
    g.set_handle(handle_of(model, schedule, classes=()))
    assert not g.isEnabled() and g.label() is None and "not class-conditional" in g.note.text()


# ----------------------------------------------------------------------------- the core functions
def test_compare_samplers_guides_every_sampler_towards_the_label(model, schedule):
    x_T = noise_from_seed((3, 1, 8, 8), 0)[0]

    def run(m=model, **guide):
        return [r.samples for r in compare_samplers(m, x_T, schedule, SPECS, objective="eps", seed=3, **guide)]

    plain, at0, at2 = run(), run(label=0, guidance_scale=3.0), run(label=2, guidance_scale=3.0)
    s0, s1 = run(label=2, guidance_scale=0.0), run(label=1, guidance_scale=1.0)
    fixed1 = run(as_class(model, 1))
    for i in range(len(SPECS)):
        assert far(at0[i], at2[i]) and far(plain[i], at2[i])
        torch.testing.assert_close(s0[i], plain[i], rtol=0, atol=0)  # S = 0 is the unconditional model
        torch.testing.assert_close(s1[i], fixed1[i], rtol=0, atol=0)  # S = 1 is the conditional one


def test_sdedit_denoises_towards_the_label(model, schedule, dataset):
    x0 = float_images(dataset.images[:2])

    def run(m=model, **guide):
        return sdedit(m, x0, 30, schedule, objective="eps", steps=5, generator=torch.Generator().manual_seed(4),
                      **guide)

    plain, at0, at2 = run(), run(label=0, guidance_scale=3.0), run(label=2, guidance_scale=3.0)
    assert far(at0, at2) and far(plain, at0)
    torch.testing.assert_close(run(label=1, guidance_scale=0.0), plain, rtol=0, atol=0)
    torch.testing.assert_close(run(label=1, guidance_scale=1.0), run(as_class(model, 1)), rtol=0, atol=0)


def test_the_handles_samples_for_memorisation_follow_the_label(model, schedule):
    h = handle_of(model, schedule)
    plain = h.sample(3, steps=4, seed=5)
    at0, at2 = h.sample(3, steps=4, seed=5, label=0, guidance_scale=3.0), h.sample(3, steps=4, seed=5, label=2,
                                                                                   guidance_scale=3.0)
    assert far(at0, at2) and far(plain, at2)
    torch.testing.assert_close(h.sample(3, steps=4, seed=5, label=0, guidance_scale=0.0), plain, rtol=0, atol=0)


# ----------------------------------------------------------------------------- the tabs' jobs
def choose(view, label, scale):
    view.guidance.set_label(label)
    view.guidance.spin.setValue(scale)


def test_the_samplers_tab_guides_every_sampler_with_the_chosen_class(qtbot, model, schedule, dataset):
    view = wire(CompareView(), handle_of(model, schedule), dataset)
    qtbot.addWidget(view)
    view.n.setValue(3)
    view.budgets.setText("3")
    got = {}
    for label in (2, 0, None):
        choose(view, label, 2.5)
        assert view.start()
        assert ("every one class" in view.status.text()) == (label is not None)
        finish(qtbot, view)
        got[label] = [p.samples for p in view.points] + [view.curves.reference]
        x_T = view.x_T
    guide = {"label": 2, "guidance_scale": 2.5}

    def samples(out):
        return [p.samples for p in out.points] + [out.reference]

    want = samples(quality_by_nfe(model, x_T, schedule, view.samplers, [3], objective="eps", seed=0, **guide))
    plain = samples(quality_by_nfe(model, x_T, schedule, view.samplers, [3], objective="eps", seed=0))
    assert len(want) == len(view.samplers) + 1 == 4  # DDIM, Heun, DPM-Solver++ and the reference
    # A worker's torch threads sum in another order: float32 round-off apart, which the ε objective's
    # x̂_0 = (x_t − √(1−ᾱ) ε̂)/√ᾱ multiplies by 1/√ᾱ_{T−1} ≈ 1015 on this schedule's first step (1e-7 → 1e-4)
    # and the 50-step reference carries through its chain: 1e-3, still ten times below `far`.
    for i in range(len(want)):
        torch.testing.assert_close(got[2][i], want[i], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(got[None][i], plain[i], rtol=1e-3, atol=1e-3)
        assert far(got[2][i], got[0][i])


def test_the_memorisation_tab_searches_samples_of_the_chosen_class(qtbot, model, schedule, dataset):
    h = handle_of(model, schedule)
    view = wire(MemoriseView(), h, dataset)
    qtbot.addWidget(view)
    view.n.setValue(3)
    view.steps.setValue(4)
    view.seed.setValue(6)
    samples = {}
    for label in (1, 2):
        choose(view, label, 3.5)
        assert view.start()
        assert f"class {CLASSES[label]}, guided at S = 3.5" in view.status.text()
        finish(qtbot, view)
        samples[label] = view.samples
        want = to_uint8(h.sample(3, sampler="ddim", steps=4, seed=6, label=label, guidance_scale=3.5))
        assert np.abs(view.samples.astype(int) - want.astype(int)).max() <= 1  # round-off on a worker
        assert view.neighbours is not None and view.list.count() == 3
    assert not np.array_equal(samples[1], samples[2])


def test_the_noise_and_denoise_tab_denoises_as_the_chosen_class(qtbot, model, schedule, dataset):
    view = wire(SDEditView(), handle_of(model, schedule), dataset)
    qtbot.addWidget(view)
    view.show()
    view.index.setValue(4)
    view.t_spin.setValue(35)
    view.steps.setValue(5)
    view.seed.setValue(8)
    view.with_strip.setChecked(False)
    x0 = float_images(dataset.images[4:5])
    results = {}
    for label in (0, 2):
        choose(view, label, 4.0)
        assert view.start()
        finish(qtbot, view)
        results[label] = view.result
        want = sdedit(model, x0, 35, schedule, objective="eps", sampler="ddim", steps=5,
                      generator=torch.Generator().manual_seed(8), label=label, guidance_scale=4.0)
        assert np.abs(view.result.astype(int) - to_uint8(want).astype(int)).max() <= 1  # round-off on a worker
        assert view.result_grid.title.text == f"denoised from t = 35 as class {CLASSES[label]}, S = 4"
        assert f"as class {CLASSES[label]}, guided at S = 4 (DDIM" in view.status.text()
    assert not np.array_equal(results[0], results[2])


def test_without_the_sessions_names_the_controls_fill_from_the_handle_when_a_job_starts(qtbot, model, schedule,
                                                                                        dataset):
    view = wire(CompareView(), handle_of(model, schedule), dataset, classes=False)
    qtbot.addWidget(view)
    view.n.setValue(1)
    view.budgets.setText("2")
    assert not view.guidance.isEnabled() and view.guidance.label_box.currentText() == "—"
    assert view.start()
    assert view.guidance.isEnabled() and view.guidance.label_box.count() == 1 + len(CLASSES)
    finish(qtbot, view)
    unconditional = wire(CompareView(), handle_of(build_unet("tiny", 1, 8).eval(), schedule, ()), dataset)
    qtbot.addWidget(unconditional)
    assert not unconditional.guidance.isEnabled() and unconditional.guide() == {}
