"""Where each symbol of the algorithm panels is shown: a click on x_0, t, ε, … in Algorithm 1 or 2 switches to
the tab that draws it and flashes that widget or plot. Wired once by the main window, like analysis_tabs."""

from __future__ import annotations

from diffview.gui.widgets.algorithm import flash


def training_targets(window) -> dict:
    """Algorithm 1's symbols → (the tab, the widget or plot to flash)."""
    tv = window.training_view
    return {"x0": (window.data_view, window.data_view.grid),  # the data q(x_0) the batches are drawn from
            "t": (tv, tv.p_t),  # the loss-by-t bins
            "eps": (window.forward_view, window.forward_view.grid),  # the noise, in the forward process
            "eps_theta": (tv, tv.preview),  # the network, by what it samples
            "grad": (tv, tv.p_loss)}  # each gradient step is a point of the loss curve


def sampling_targets(window) -> dict:
    """Algorithm 2's and DDIM's symbols → (the tab, the widget or plot to flash)."""
    sv = window.sampling_view
    return {"x_T": (sv, sv.xt_grid), "x_t": (sv, sv.xt_grid), "x0": (sv, sv.xt_grid), "t": (sv, sv.player),
            "z": (window.forward_view, window.forward_view.grid), "eps_theta": (sv, sv.x0_grid),
            "x0_pred": (sv, sv.x0_grid)}


def show_symbol(window, targets: dict, name: str) -> bool:
    """Switch to where ``name`` is shown and flash it; False for a symbol with no place."""
    if name not in targets:
        return False
    tab, target = targets[name]
    window.tabs.setCurrentWidget(tab)
    flash(target)
    return True


def link_algorithms(window) -> None:
    """Connect the Training and Sampling tabs' algorithm panels to the tabs their symbols link to."""
    train, sample = training_targets(window), sampling_targets(window)
    window.training_view.algorithm.symbol_clicked.connect(lambda name: show_symbol(window, train, name))
    window.sampling_view.algorithm.symbol_clicked.connect(lambda name: show_symbol(window, sample, name))


__all__ = ["link_algorithms", "sampling_targets", "show_symbol", "training_targets"]
