"""The base of the analysis tabs: controls, a view and a formula caption around one cancellable Job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QWidget

from diffview.core.data.files import SkipFile, decode_image, to_channels
from diffview.core.runs.handle import ImageShape
from diffview.gui.persistence import dialog_start, remember_folder
from diffview.gui.widgets.guidance import GuidanceControls
from diffview.gui.widgets.images import ImageGrid
from diffview.gui.widgets.plot_style import Placeholder
from diffview.gui.widgets.text import caption
from diffview.gui.workers.jobs import Job, Jobs


def float_images(images) -> "torch.Tensor":  # noqa: F821
    """uint8 images [N, C, H, W] (array or tensor) as float32 in [−1, 1], exactly as the dataset makes them."""
    import torch

    from diffview.core.data.images import ImageDataset

    return ImageDataset.to_float(torch.as_tensor(images))


class JobView(QWidget):
    """A tab that runs one Job at a time on the current model; ``cancel_and_wait`` on close."""

    message = Signal(str, str)
    NO_MODEL = "No model yet: train for at least one step (Ctrl+T) or open a run folder (File ▸ Open Run)."
    NEEDS_MODEL = "It needs a model: train one (Ctrl+T) or open a run (Ctrl+Shift+O)."
    CANCELLING = "Cancelling…"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_source = None  # callable(ema=True) -> ModelHandle | None
        self.data_source = None  # callable() -> (ImageDataset | None, DatasetReport | None)
        self.jobs = Jobs(self)  # one at a time
        self.classes_source = None  # callable() -> the class names of the model it would sample (None: no model)
        self.guidance: GuidanceControls | None = None  # a class and S, in the tabs that sample
        self.placeholders: list[Placeholder] = []  # hidden once the view first runs
        self.writes = Jobs(self)  # exports: a file is written on a worker, beside the view's computation

    def refresh_guidance(self) -> None:
        """The class controls from the model's class names, known without copying weights."""
        if self.guidance is not None and self.classes_source is not None:
            self.guidance.set_classes(self.classes_source())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_guidance()

    def add_placeholder(self, target, action: str, needs: str | None = None) -> Placeholder:
        """Words inside ``target`` (an ImageGrid, a pyqtgraph PlotWidget or PlotItem) until it is filled: the one action
        that fills it and what that needs (``needs``; a model by default)."""
        text = f"Press <b>{action}</b> to fill this.<br>{self.NEEDS_MODEL if needs is None else needs}"
        if isinstance(target, ImageGrid):  # a grid hides its words itself when its images come
            target.set_placeholder(text)
            return target.placeholder
        plot = target.getPlotItem() if hasattr(target, "getPlotItem") else target  # a PlotWidget or a PlotItem
        placeholder = Placeholder(plot.getViewBox(), text)
        self.placeholders.append(placeholder)
        return placeholder

    def arrange(self, form, right, width: int, formula: str) -> None:
        """The tab's layout: the controls (``form``) at ``width`` on the left, ``right`` beside them with the
        caption of the formula the view plots under it."""
        controls = QWidget()
        controls.setLayout(form)
        controls.setMaximumWidth(width)
        right.addWidget(caption(formula))
        layout = QHBoxLayout(self)
        layout.addWidget(controls)
        layout.addLayout(right, 1)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def current_model(self, points: bool = False):
        """The model source's ModelHandle for an image model (or, with ``points``, a 2D one), or None (and the
        reason in the view's status)."""
        handle = self.model_source(ema=True) if self.model_source is not None else None
        if handle is None:
            self.set_status(self.NO_MODEL)
        elif not isinstance(handle.shape, ImageShape) and not points:
            self.set_status(f"{handle.label} makes {handle.shape}: this tab works on image models.")
            return None
        if self.guidance is not None:  # the handle's classes are the ones its job samples
            self.guidance.set_handle(handle)
        return handle

    def guide(self) -> dict:
        """The ``label`` and ``guidance_scale`` for ``iter_sample`` chosen in the class controls ({} for none)."""
        label = self.guidance.label() if self.guidance is not None else None
        return {} if label is None else {"label": label, "guidance_scale": self.guidance.scale()}

    def current_dataset(self):
        return self.data_source() if self.data_source is not None else (None, None)

    def set_status(self, text: str) -> None:  # each view has a status label
        self.status.setText(text)

    def run_job(self, fn, name: str, on_item=None, on_done=None) -> Job | None:
        """Run ``fn(emit, cancelled)`` as the view's job; ``on_done(result, error, cancelled)`` at the end, after
        a failure's message went to the status and the log. None once the app is closing."""
        job = None

        def finished(result, error):
            if error:
                self.set_status(error)
                self.message.emit("error", error)
            if on_done is not None:
                on_done(result, error, job.cancelled)

        job = self.jobs.start(fn, name, on_item, finished)
        for placeholder in self.placeholders:
            placeholder.hide()
        return job

    def start(self) -> bool:
        """Start the view's computation; False if it cannot (no model, busy, bad input: the status says)."""
        raise NotImplementedError

    def start_or_cancel(self) -> None:
        """What the view's Run / Cancel button does."""
        if self.busy:
            self.cancel()
            self.set_status(self.CANCELLING)
        else:
            self.start()

    def cancel(self) -> None:
        self.jobs.cancel()

    def cancel_and_wait(self, ms: int = 30_000) -> None:
        self.jobs.cancel_and_wait(ms)
        self.writes.cancel_and_wait(ms)

    def write_file(self, write, path: str, buttons=()) -> Job | None:
        """``write(path)`` (a closure over data already taken from the view) on a worker, never on the GUI
        thread; ``buttons`` wait meanwhile; the written path, or why not, goes to the log."""
        for b in buttons:
            b.setEnabled(False)

        def done(written, error):
            for b in buttons:
                b.setEnabled(True)
            if error:
                self.message.emit("error", f"Could not write {path}: {error}")
            else:
                self.message.emit("info", f"Wrote {written}")

        return self.writes.start(lambda emit, cancelled: write(path), "diffview-export", None, done)


IMAGE_FILES = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff)"


class ImageJobView(JobView):
    """A JobView that works on one image x_0: a training image by index or any image file, decoded as the training
    images are. A subclass makes ``index`` (a spin box) and ``original_grid``, and titles the grid in
    ``_set_original``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.original: np.ndarray | None = None  # uint8 [1, C, H, W]
        self.source_label = ""

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_data()

    def data_loaded(self) -> None:
        """New data: the image number's range at once, the image itself now if the tab is shown (else on show)."""
        dataset, _ = self.current_dataset()
        if dataset is not None:
            self.index.setMaximum(len(dataset) - 1)
        if self.isVisible():
            self.refresh_data()

    def refresh_data(self) -> None:
        """The data source's images (on show, and when new data loads while the tab is shown)."""
        dataset, _ = self.current_dataset()
        if dataset is not None:
            self.index.setMaximum(len(dataset) - 1)
            if self.original is None or self.source_label.startswith("training"):
                self.use_training_image(self.index.value())

    def use_training_image(self, i: int) -> None:
        dataset, _ = self.current_dataset()
        if dataset is None or not 0 <= i < len(dataset):
            return
        self.original = dataset.images_uint8([i]).numpy()
        self._set_original(f"training image #{i}")

    def load_image_file(self, path: str) -> bool:
        """Any image file, decoded like the training images, at the model's (else the dataset's) size and channels."""
        handle = self.model_source(ema=True) if self.model_source is not None else None
        dataset, _ = self.current_dataset()
        shape = getattr(handle, "shape", None)
        if isinstance(shape, ImageShape):
            channels, size = shape.channels, shape.size
        elif dataset is not None:
            channels, size = dataset.channels, dataset.image_size
        else:
            self.set_status("No model or dataset yet: its size and channels decide how the image is read.")
            return False
        try:
            arr = decode_image(path, size)
        except SkipFile as e:
            self.set_status(f"Cannot use {path}: {e.reason}")
            return False
        self.original = np.ascontiguousarray(to_channels(arr, channels))[None]
        self._set_original(f"the file {Path(path).name}")
        return True

    def image_model(self):
        """The image x_0 (the chosen training image if none yet) and the model to run on it, or None with the reason
        in the status: no image, no image model, or an image of another shape than the model's."""
        if self.original is None:
            self.use_training_image(self.index.value())
        if self.original is None:
            self.set_status("No image: load a dataset or open an image file.")
            return None
        handle = self.current_model()
        if handle is None:
            return None
        if self.original.shape[1:] != handle.sample_shape(1)[1:]:
            self.set_status(f"The model takes {handle.shape} images; this one is "
                            f"{'×'.join(map(str, self.original.shape[1:]))}.")
            return None
        return handle

    def _set_original(self, label: str) -> None:
        self.source_label = label
        self.original_grid.set_images(self.original)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", dialog_start(), IMAGE_FILES)
        remember_folder(path)
        if path:
            self.load_image_file(path)
