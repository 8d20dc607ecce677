"""2D points through the one Trainer: the dataset, the MLP, training to the data, and the CLI."""

import subprocess
import sys

import pytest
import torch

from diffview.core.data.images import DataError
from diffview.core.data.points import (
    PointDataset,
    distance_to_data,
    is_points_source,
    load_points,
    read_points_csv,
    save_points_csv,
    scatter_image,
)
from diffview.core.models.registry import build_model
from diffview.core.runs.open import open_run
from diffview.core.sampling import sample
from diffview.core.train.config import TrainConfig
from diffview.core.train.events import DoneEvent, PreviewEvent
from diffview.core.train.trainer import Trainer


def test_points_sources_and_csv_round_trip(tmp_path):
    assert is_points_source("moons") and is_points_source("drawn.CSV") and not is_points_source("digits")
    pts = torch.tensor([[0.0, 1.0], [2.5, -1.0], [3.0, 3.0]])
    path = save_points_csv(pts, tmp_path / "p.csv")
    with open(path, "a", encoding="utf-8") as f:
        f.write("not,a number\n1.0\nnan,2\n")
    back, skipped = read_points_csv(path)
    assert torch.allclose(back, pts) and skipped == 4  # the header, two bad rows and a NaN


def test_csv_datasets_are_standardised_and_bad_files_are_clear(tmp_path):
    pts = torch.randn(50, 2) * torch.tensor([3.0, 1.0]) + 7
    ds, report = load_points(str(save_points_csv(pts, tmp_path / "p.csv")))
    assert torch.allclose(ds.points.mean(0), torch.zeros(2), atol=1e-5)
    assert abs(float(ds.points.pow(2).mean()) - 1) < 1e-5
    assert "Used 50 2D points" in report.summary() and "standard deviation" in report.summary()
    with pytest.raises(DataError, match="does not exist"):
        load_points(str(tmp_path / "missing.csv"))
    save_points_csv(pts[:3], tmp_path / "few.csv")
    with pytest.raises(DataError, match="3 point.*at least 8"):
        load_points(str(tmp_path / "few.csv"))


def test_models_match_their_data():
    points = PointDataset(torch.randn(20, 2))
    assert build_model("mlp-tiny", points)(torch.randn(5, 2), torch.zeros(5, dtype=torch.long)).shape == (5, 2)
    with pytest.raises(ValueError, match="2D points train an MLP"):
        build_model("tiny", points)
    with pytest.raises(ValueError, match="for 2D points"):
        TrainConfig.for_dataset("digits", model="mlp").validate() and build_model("mlp", _images())


def _images():
    from helpers import square_dataset
    return square_dataset()


def test_2d_defaults_apply_only_to_points():
    assert TrainConfig.for_dataset("moons").model == "mlp"
    assert TrainConfig.for_dataset("digits") == TrainConfig()
    assert TrainConfig.from_dict({"dataset": "moons"}).model == "mlp"


def test_scatter_image_places_points_where_they_are():
    img = scatter_image(torch.tensor([[3.0, 3.0]]), size=11, limit=3.0)
    assert img.shape == (3, 11, 11)
    assert img[:, 0, 10].tolist() != [255, 255, 255]  # top right corner drawn
    assert img[:, 10, 0].tolist() == [255, 255, 255]  # bottom left untouched


def test_distance_floor_is_below_a_wrong_distribution():
    ds, _ = load_points("moons")
    floor_d, floor, n = distance_to_data(ds.points, ds)
    wrong, floor2, _ = distance_to_data(torch.randn(10_000, 2), ds)
    assert n == 10_000 and floor == floor2 and wrong > 10 * floor


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    """The default 2D recipe on moons, as `diffview train --dataset moons` trains it (previews, which do not
    change the training, every 500 steps rather than 200: each samples 2,000 points with 100 DDPM steps)."""
    run_dir = tmp_path_factory.mktemp("moons") / "run"
    cfg = TrainConfig.for_dataset("moons", threads=2, preview_every=500)
    events = list(Trainer(cfg, run_dir).run())
    assert events[-1].reason == "finished", events[-1].message
    return run_dir, events


def test_mlp_learns_moons_within_three_times_the_data_floor(moons_run):
    run_dir, events = moons_run
    run = open_run(run_dir)
    assert run.handle.shape.kind == "points"
    with torch.no_grad():
        x = sample(run.handle.model, (10_000, 2), run.handle.schedule, sampler="ddpm", steps=250,
                   objective=run.handle.objective, clip_x0=False, generator=torch.Generator().manual_seed(3))
    distance, floor, n = distance_to_data(x, load_points("moons")[0])
    assert n == 10_000 and distance < 3 * floor, (distance, floor)
    previews = [e for e in events if isinstance(e, PreviewEvent)]
    assert previews[-1].points.shape == (2000, 2) and previews[-1].distance < previews[0].distance


def test_cli_trains_and_samples_points(tmp_path):
    run = tmp_path / "run"
    env_cmd = [sys.executable, "-m", "diffview"]
    r = subprocess.run(env_cmd + ["train", "--dataset", "moons", "--steps", "30", "--out", str(run),
                                  "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "mlp MLP" in r.stderr
    r = subprocess.run(env_cmd + ["sample", str(run), "--n", "500", "--steps", "10", "--out", str(tmp_path / "p.png"),
                                  "--csv", str(tmp_path / "p.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "sliced Wasserstein distance to the data" in r.stderr and "two draws of the data" in r.stderr
    pts, skipped = read_points_csv(tmp_path / "p.csv")
    assert pts.shape == (500, 2) and skipped == 1
    from PIL import Image
    meta = Image.open(tmp_path / "p.png").text
    assert float(meta["sliced_wasserstein"]) > float(meta["data_floor"]) > 0
    r = subprocess.run(env_cmd + ["sample", str(run), "--gif", str(tmp_path / "x.gif")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "2D runs" in r.stderr


def test_training_from_a_csv_resumes(tmp_path):
    path = save_points_csv(torch.randn(64, 2), tmp_path / "drawn.csv")
    cfg = TrainConfig.for_dataset(str(path), model="mlp-tiny", steps=6, checkpoint_every=3, threads=1,
                                  preview_every=3, preview_n=16, preview_steps=4, timesteps=50)
    events = list(Trainer(cfg, tmp_path / "run").run())
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "finished"
    cfg.steps = 9
    resumed = list(Trainer(cfg, tmp_path / "run", resume=True).run())
    assert resumed[-1].reason == "finished" and resumed[-1].step == 9
