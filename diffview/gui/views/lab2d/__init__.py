"""The "2D diffusion" tab: :class:`~.view.Lab2DView` (the layout and its controls), drawing with the
:mod:`.panels`, on the state of a widget-free :class:`~.session.Lab2DSession` (data, trainer, jobs)."""

from diffview.gui.views.lab2d.session import DRAW, Lab2DSession
from diffview.gui.views.lab2d.view import Lab2DView

__all__ = ["DRAW", "Lab2DSession", "Lab2DView"]
