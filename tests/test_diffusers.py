"""Folders written by diffusers' save_pretrained: recognised, their schedules exact, sampled by diffview.

Tests that build real diffusers models take the ``diffusers`` fixture (skipped without the package);
recognising a folder and the "what to install" message need only JSON and run always.
"""

import json
import sys

import pytest
import torch
from PIL import Image

from diffview.cli import main
from diffview.core.diffusion import ddim_step, ddpm_step
from diffview.core.io.checkpoint import CheckpointError
from diffview.core.runs.diffusers_model import (
    DiffusersMissingError,
    is_diffusers_folder,
    objective_from_scheduler_config,
    schedule_from_scheduler_config,
)
from diffview.core.runs.handle import FromDiffusers, ImageShape
from diffview.core.runs.open import is_run_folder, open_run

T = 50


@pytest.fixture
def diffusers():
    module = pytest.importorskip("diffusers")
    import safetensors.torch  # noqa: F401  older diffusers (0.25, 0.30 tested) save without importing it
    return module


def tiny_unet(diffusers, channels=1, out_channels=None):
    return diffusers.UNet2DModel(sample_size=8, in_channels=channels, out_channels=out_channels or channels,
                                 block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))


def save_tiny(diffusers, root, scheduler="DDIMScheduler", layout="unet", channels=1, **sched_kwargs):
    """A tiny UNet2DModel and its scheduler saved as diffusers saves them: one folder, or a DDPMPipeline."""
    unet = tiny_unet(diffusers, channels)
    sched = getattr(diffusers, scheduler)(num_train_timesteps=T, **sched_kwargs)
    if layout == "pipeline":
        diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(root)
    else:
        unet.save_pretrained(root)
        sched.save_pretrained(root)
    return unet, sched


def fake_folder(root, unet_class="UNet2DModel", scheduler=True):
    """The JSON of a diffusers UNet folder, without diffusers (the weights file is a stand-in)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"_class_name": unet_class, "_diffusers_version": "0.30.0",
                                                  "sample_size": 8, "in_channels": 1, "out_channels": 1}))
    (root / "diffusion_pytorch_model.safetensors").write_bytes(b"not read before diffusers is imported")
    if scheduler:
        (root / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler",
                                                                "num_train_timesteps": T, "beta_schedule": "linear",
                                                                "beta_start": 0.001, "beta_end": 0.02}))
    return root


# ---------------------------------------------------------------------------------- the schedule, exactly
CASES = [("DDPMScheduler", dict(beta_schedule=b)) for b in ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")]
CASES += [("DDIMScheduler", dict(beta_schedule=b, beta_start=0.00085, beta_end=0.012))
          for b in ("linear", "scaled_linear", "squaredcos_cap_v2")]
CASES += [("DDPMScheduler", dict(trained_betas=torch.linspace(1e-3, 0.05, T).tolist())),
          ("DDIMScheduler", dict(beta_schedule="scaled_linear", rescale_betas_zero_snr=True)),
          ("DDPMScheduler", dict(beta_schedule="linear", num_train_timesteps=1000))]


@pytest.mark.parametrize("cls, kwargs", CASES, ids=lambda v: v if isinstance(v, str) else "-".join(
    f"{k}={v if not isinstance(v, list) else 'list'}" for k, v in v.items()))
def test_our_schedule_has_the_schedulers_betas(diffusers, cls, kwargs):
    kwargs = {"num_train_timesteps": T, **kwargs}
    sched = getattr(diffusers, cls)(**kwargs)
    ours = schedule_from_scheduler_config(dict(sched.config))
    assert ours.betas.dtype == torch.float64 and ours.timesteps == kwargs["num_train_timesteps"]
    if kwargs.get("rescale_betas_zero_snr"):
        # diffusers rescales in float32, which loses digits on the small betas: check its own function in
        # float64 on the unrescaled betas exactly, and the scheduler's float32 result to float32 accuracy
        from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

        plain = schedule_from_scheduler_config({**dict(sched.config), "rescale_betas_zero_snr": False})
        torch.testing.assert_close(ours.betas, rescale_zero_terminal_snr(plain.betas.clone()), rtol=1e-12, atol=0)
        torch.testing.assert_close(ours.betas, sched.betas.double(), rtol=0, atol=1e-5)
        assert float(ours.alphas_cumprod[-1]) == 0.0 == float(sched.alphas_cumprod[-1])
        return
    torch.testing.assert_close(ours.betas, sched.betas.double(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(ours.alphas_cumprod, sched.alphas_cumprod.double(), rtol=2e-5, atol=1e-8)


def test_schedule_names_options_and_objectives_map_to_ours():
    assert schedule_from_scheduler_config({"beta_schedule": "scaled_linear"}).name == "quadratic"
    assert schedule_from_scheduler_config({"beta_schedule": "squaredcos_cap_v2"}).name == "cosine"
    linear = schedule_from_scheduler_config({"beta_schedule": "linear", "num_train_timesteps": 100})
    assert float(linear.betas[0]) == 1e-4 and float(linear.betas[-1]) == 0.02  # no 1000/T scaling
    assert [objective_from_scheduler_config({"prediction_type": p}) for p in ("epsilon", "sample", "v_prediction")] \
        == ["eps", "x0", "v"]
    with pytest.raises(ValueError, match="thresholding"):
        schedule_from_scheduler_config({"thresholding": True})
    with pytest.raises(ValueError, match="beta_schedule='laplace'"):
        schedule_from_scheduler_config({"beta_schedule": "laplace"})
    with pytest.raises(ValueError, match="prediction_type='flow'"):
        objective_from_scheduler_config({"prediction_type": "flow"})


# ---------------------------------------------------------------------------------- recognising a folder
def test_folders_are_recognised_from_their_json_alone(tmp_path):
    unet = fake_folder(tmp_path / "unet")
    assert is_diffusers_folder(unet) and is_run_folder(unet)
    bare = fake_folder(tmp_path / "bare", scheduler=False)
    assert not is_diffusers_folder(bare)
    with pytest.raises(CheckpointError, match="no scheduler config"):
        open_run(bare)
    (bare / "scheduler").mkdir()
    (unet / "scheduler_config.json").rename(bare / "scheduler" / "scheduler_config.json")
    assert is_diffusers_folder(bare) and not is_diffusers_folder(unet)
    fake_folder(tmp_path / "sd" / "unet", unet_class="UNet2DConditionModel", scheduler=False)
    (tmp_path / "sd" / "model_index.json").write_text("{}")
    (tmp_path / "sd" / "scheduler").mkdir()
    (tmp_path / "sd" / "scheduler" / "scheduler_config.json").write_text('{"_class_name": "PNDMScheduler"}')
    assert not is_diffusers_folder(tmp_path / "sd") and is_run_folder(tmp_path / "sd")
    with pytest.raises(CheckpointError, match="holds a diffusers UNet2DConditionModel"):
        open_run(tmp_path / "sd")
    assert not is_diffusers_folder(tmp_path) and not is_run_folder(tmp_path)


def test_without_diffusers_opening_says_what_to_install(tmp_path, monkeypatch, capsys):
    folder = fake_folder(tmp_path / "model")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if it were not installed
    with pytest.raises(DiffusersMissingError) as e:
        open_run(folder)
    assert str(e.value) == (f"{folder} is a diffusers model folder; opening it needs the diffusers package: "
                            'pip install "diffview[diffusers]"')
    assert main(["sample", str(folder), "--n", "2", "--steps", "2", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"diffview: error: {e.value}"]
    assert main(["info", str(folder)]) == 0  # describing needs only the JSON
    out = capsys.readouterr().out
    assert "UNet2DModel" in out and "linear (diffview's linear), T=50, epsilon → eps" in out


# ---------------------------------------------------------------------------------- opening and sampling
@pytest.mark.parametrize("scheduler, layout", [("DDIMScheduler", "unet"), ("DDPMScheduler", "pipeline")])
def test_open_and_sample_a_few_steps(diffusers, tmp_path, scheduler, layout):
    save_tiny(diffusers, tmp_path / "m", scheduler, layout, channels=3, beta_schedule="squaredcos_cap_v2",
              prediction_type="v_prediction")
    for path in ([tmp_path / "m"] + ([tmp_path / "m" / "unet"] if layout == "pipeline" else [])):
        assert is_diffusers_folder(path)
        run = open_run(path)
        assert (run.config, type(run.handle.origin), run.handle.objective, run.handle.schedule.name) == (
            None, FromDiffusers, "v", "cosine")
        assert (run.handle.shape, run.handle.schedule.timesteps) == (ImageShape(3, 8), T)
        for sampler in ("ddim", "ddpm"):
            steps = list(run.handle.iter_sample(2, sampler=sampler, steps=3, seed=1))
            assert [s.t for s in steps] == [49, 32, 16] and steps[-1].t_prev == -1
            assert steps[-1].x_prev.shape == (2, 3, 8, 8) and torch.isfinite(steps[-1].x_prev).all()
            assert not torch.equal(steps[0].x0_pred, steps[-1].x0_pred)


def test_the_wrapper_returns_what_the_unet_returns(diffusers, tmp_path):
    unet, _ = save_tiny(diffusers, tmp_path / "m")
    torch.nn.init.normal_(unet.conv_out.weight)  # save_pretrained's conv_out may be near zero; make outputs differ
    unet.save_pretrained(tmp_path / "m")
    run = open_run(tmp_path / "m")
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 49])
    with torch.no_grad():
        expected = unet.eval()(x, t).sample
        got = run.handle.model(x, t)
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("t, t_prev", [(25, 20), (0, -1)])
@pytest.mark.parametrize("clip", [False, True])
def test_our_ddim_step_is_the_schedulers(diffusers, prediction_type, t, t_prev, clip):
    sched = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="scaled_linear", clip_sample=clip,
                                    prediction_type=prediction_type)
    sched.set_timesteps(T // (t - t_prev) if t_prev >= 0 else 10)  # prev_timestep = t − T // steps
    ours = schedule_from_scheduler_config(dict(sched.config))
    g = torch.Generator().manual_seed(0)
    x_t, out = torch.randn(2, 1, 8, 8, generator=g) * 1.5, torch.randn(2, 1, 8, 8, generator=g)
    theirs = sched.step(out, t, x_t, eta=0.0, use_clipped_model_output=True)
    res = ddim_step(out, x_t, t, t_prev, ours, eta=0.0, objective=PREDICTION[prediction_type], clip_x0=clip)
    torch.testing.assert_close(res.x0_pred, theirs.pred_original_sample, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(res.prev, theirs.prev_sample, rtol=1e-5, atol=1e-5)


PREDICTION = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


def test_our_ddpm_step_is_the_schedulers(diffusers):
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-3, beta_end=0.05)
    ours = schedule_from_scheduler_config(dict(sched.config))
    g = torch.Generator().manual_seed(0)
    x_t, out = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g) * 0.3
    theirs = sched.step(out, 10, x_t, generator=torch.Generator().manual_seed(5)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5))
    res = ddpm_step(out, x_t, 10, ours, objective="eps", noise=noise)
    torch.testing.assert_close(res.prev, theirs, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- the command line
def test_cli_samples_and_describes_a_diffusers_folder(diffusers, tmp_path, capsys):
    save_tiny(diffusers, tmp_path / "pipe", "DDPMScheduler", "pipeline")
    for sampler in ("ddim", "ddpm"):
        out = tmp_path / f"{sampler}.png"
        assert main(["sample", str(tmp_path / "pipe"), "--n", "4", "--steps", "5", "--sampler", sampler,
                     "--out", str(out)]) == 0
        img = Image.open(out)
        assert img.text["sampler"] == sampler and img.text["sampler_steps"] == "5"
        assert img.text["weights"] == "diffusers" and img.text["schedule"] == "linear" and img.text["timesteps"] == "50"
    assert main(["sample", str(tmp_path / "pipe"), "--raw"]) == 1
    assert "--raw" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "pipe")]) == 0
    assert "DDPMScheduler: linear" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- the app
def test_the_app_opens_a_diffusers_folder_and_samples_it(diffusers, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("pytestqt")
    from diffview.gui.main_window import MainWindow
    from diffview.gui.workers.threads import running_threads

    monkeypatch.setenv("DIFFVIEW_CACHE_DIR", str(tmp_path / "cache"))
    save_tiny(diffusers, tmp_path / "pipe", "DDPMScheduler", "pipeline", beta_schedule="scaled_linear",
              beta_start=0.001, beta_end=0.03)
    w = MainWindow(str(tmp_path / "pipe"), runs_root=tmp_path / "runs")  # as `diffview DIR` opens it
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.loaded_run is not None and w.dataset is not None and not w._tasks, timeout=60_000)
    run = w.loaded_run
    assert w.schedule is run.handle.schedule and w.forward_view.schedule is run.handle.schedule
    torch.testing.assert_close(w.schedule_view.schedule.betas, run.handle.schedule.betas)
    assert float(run.handle.schedule.betas[-1]) == pytest.approx(0.03)  # the scheduler's, not the settings' default
    assert not w.settings.train_button.isEnabled()
    w.start_training()
    assert w.trainer is None and not w.controller.running
    assert "does not train it further" in w.log.toPlainText()
    sv = w.sampling_view
    sv.sampler.setCurrentText("DDIM")
    sv.steps.setValue(3)
    sv.n.setValue(2)
    sv.run_button.click()
    qtbot.waitUntil(lambda: not sv.busy and sv.slider.isEnabled(), timeout=60_000)
    assert len(sv.trajectory) == 4 and "diffusers model pipe" in sv.settings["model"]

    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    save_tiny(diffusers, tmp_path / "single", "DDIMScheduler", beta_schedule="squaredcos_cap_v2")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "single"))])
    w.dropEvent(QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    qtbot.waitUntil(lambda: w.loaded_run.root == tmp_path / "single", timeout=60_000)  # opened on a worker
    assert w.loaded_run.root == tmp_path / "single" and w.schedule_view.schedule.name == "cosine"
    assert w.forward_view.schedule is w.loaded_run.handle.schedule and not w.settings.train_button.isEnabled()
    w.load_source("digits")  # choosing data closes the diffusers model: Train trains a new one
    assert w.loaded_run is None and w.settings.train_button.isEnabled()
    assert w.schedule_view.schedule.name == w.settings.config().schedule
    qtbot.waitUntil(lambda: not w._tasks, timeout=60_000)
    w.close()
    assert running_threads() == []


def test_recognising_and_describing_never_import_diffusers(tmp_path):
    import subprocess

    folder = fake_folder(tmp_path / "m")
    code = ("import sys; from diffview.core.runs.open import describe_run, is_run_folder\n"
            f"assert is_run_folder({str(folder)!r}); describe_run({str(folder)!r})\n"
            "print('diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------- the model's own variance
def save_variance_model(diffusers, root, variance_type, out_channels=None):
    """A tiny 1-channel UNet under a DDPMScheduler of ``variance_type``; a learned one has 2 output channels
    (ε and the variance v)."""
    torch.manual_seed(0)
    unet = tiny_unet(diffusers, 1, out_channels or (2 if variance_type.startswith("learned") else 1))
    torch.nn.init.normal_(unet.conv_out.weight, std=0.3)  # outputs of a size that moves the variance
    torch.nn.init.normal_(unet.conv_out.bias, std=0.3)
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-3, beta_end=0.05,
                                    variance_type=variance_type, timestep_spacing="trailing")
    unet.save_pretrained(root)
    sched.save_pretrained(root)
    return unet.eval(), sched


def improved_ddpm_kl_bits(unet, x0, t, noise, clip=True):
    """L_{t−1} (or L_0 at t = 0) in bits/dim of a learned_range ε-model, from the betas alone (float64)."""
    import numpy as np

    from diffview.core.losses import discretized_gaussian_log_likelihood, normal_kl

    betas = np.linspace(1e-3, 0.05, T)
    ab = np.cumprod(1 - betas)
    ab_prev = np.append(1.0, ab[:-1])
    tilde = betas * (1 - ab_prev) / (1 - ab)
    log_tilde = np.log(np.append(tilde[1], tilde[1:]))  # β̃_0 = 0: clipped to β̃_1, as improved DDPM does
    f32 = lambda a: torch.tensor(float(a), dtype=torch.float32)  # noqa: E731
    x_t = f32(np.sqrt(ab[t])) * x0 + f32(np.sqrt(1 - ab[t])) * noise
    with torch.no_grad():
        out = unet(x_t, torch.full((len(x0),), t)).sample
    eps, v = out[:, :1], out[:, 1:]
    x0_hat = (x_t - f32(np.sqrt(1 - ab[t])) * eps) / f32(np.sqrt(ab[t]))
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    c1, c2 = betas[t] * np.sqrt(ab_prev[t]) / (1 - ab[t]), (1 - ab_prev[t]) * np.sqrt(1 - betas[t]) / (1 - ab[t])
    frac = (v + 1) / 2  # improved DDPM eq. 15: log Σ = v log β_t + (1 − v) log β̃_t, v mapped from [−1, 1]
    log_var = frac * f32(np.log(betas[t])) + (1 - frac) * f32(log_tilde[t])
    p_mean = f32(c1) * x0_hat + f32(c2) * x_t
    if t == 0:
        nats = -discretized_gaussian_log_likelihood(x0, p_mean, 0.5 * log_var)
    else:
        q_mean = f32(c1) * x0 + f32(c2) * x_t
        nats = normal_kl(q_mean, f32(log_tilde[t]) * torch.ones_like(x0), p_mean, log_var)
    return nats.flatten(1).mean(1).double() / np.log(2)


def test_the_bound_of_a_learned_range_model_is_improved_ddpm_eq_15(diffusers, tmp_path):
    from diffview.core.analysis.bound import vlb_by_timestep
    from diffview.core.losses import vlb_terms

    unet, _ = save_variance_model(diffusers, tmp_path / "m", "learned_range")
    run = open_run(tmp_path / "m")
    assert run.handle.model.variance_type == "learned_range"
    x0 = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    terms = vlb_terms(run.handle.model, x0, run.handle.schedule, objective="eps",
                      generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    for t in range(T):  # every timestep, L_0 included, drawing the noise in the order vlb_terms does
        noise = torch.randn(x0.shape, generator=g)
        torch.testing.assert_close(terms[:, t], improved_ddpm_kl_bits(unet, x0, t, noise), rtol=2e-5, atol=1e-7)
    fixed = vlb_terms(run.handle.model, x0, run.handle.schedule, objective="eps", variance="fixed_small",
                      generator=torch.Generator().manual_seed(2))
    assert ((terms - fixed).abs()[:, 1:] > 1e-5 * fixed[:, 1:]).all()  # with β̃_t: another model's bound
    r = vlb_by_timestep(run.handle.model, x0, run.handle.schedule, objective="eps", seed=2)
    assert r.variance == "learned_range"
    torch.testing.assert_close(torch.from_numpy(r.terms), terms.mean(0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("t", range(1, T))
def test_our_ddpm_step_with_the_learned_variance_is_the_schedulers(diffusers, t):
    g = torch.Generator().manual_seed(t)
    x_t, out = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 2, 8, 8, generator=g)
    for variance_type in ("learned_range", "learned"):
        sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-3,
                                        beta_end=0.05, variance_type=variance_type)
        if variance_type == "learned":  # σ² itself, as the scheduler reads it: positive, of the size of β
            out[:, 1:] = 0.05 * torch.rand(2, 1, 8, 8, generator=g) + 1e-4
        ours = schedule_from_scheduler_config(dict(sched.config))
        theirs = sched.step(out, t, x_t, generator=torch.Generator().manual_seed(5)).prev_sample
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5))
        res = ddpm_step(out[:, :1], x_t, t, ours, objective="eps", variance=variance_type, model_var=out[:, 1:],
                        noise=noise)
        torch.testing.assert_close(res.prev, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("steps", [T, 5])
def test_sampling_a_diffusers_model_is_its_schedulers_chain(diffusers, tmp_path, variance_type, steps):
    unet, sched = save_variance_model(diffusers, tmp_path / "m", variance_type)
    run = open_run(tmp_path / "m")
    assert run.handle.model.variance_type == variance_type
    ours = list(run.handle.iter_sample(2, sampler="ddpm", steps=steps, seed=1))
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(run.handle.sample_shape(2), generator=g)
    with torch.no_grad():
        for st, t in zip(ours, sched.timesteps):
            assert st.t == int(t)
            step = sched.step(unet(x, t).sample, t, x, generator=g)
            torch.testing.assert_close(st.x0_pred, step.pred_original_sample, rtol=1e-4, atol=1e-4)
            x = step.prev_sample
            if st.t_prev >= 0 or st.t == 0:  # a respaced chain's last step: diffusers adds noise unless t = 0,
                torch.testing.assert_close(st.x_prev, x, rtol=1e-4, atol=1e-4)  # DDPM Algorithm 2 none
    assert len(ours) == len(sched.timesteps) == steps


def test_a_learned_variance_without_its_channels_or_positive_is_refused(diffusers, tmp_path):
    from diffview.core.analysis.bound import vlb_by_timestep

    save_variance_model(diffusers, tmp_path / "m", "learned_range", out_channels=1)
    with pytest.raises(CheckpointError, match="variance_type is learned_range but the UNet has 1 output channels"):
        open_run(tmp_path / "m")
    save_variance_model(diffusers, tmp_path / "n", "learned")  # random outputs: σ² < 0 somewhere
    run = open_run(tmp_path / "n")
    with pytest.raises(ValueError, match="not positive everywhere"):
        vlb_by_timestep(run.handle.model, torch.zeros(1, 1, 8, 8), run.handle.schedule, objective="eps", timesteps=3)
