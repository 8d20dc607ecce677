"""The app explains itself: F1 opens the current tab's page, every control has a tooltip, Help lists every
shortcut, the View menu toggles the panels."""

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QTextBrowser

from diffview.gui.help import HELP_PAGES
from diffview.gui.menus import show_tab_help
from diffview.gui.tooltips import TOOLTIPS, TYPES
from diffview.gui.window_memory import controls_of


def action(window, text):
    return next(a for a in window.findChildren(QAction) if a.text().replace("&", "") == text)


def test_every_tab_has_a_page_with_what_the_equation_what_to_try_and_the_paper(window):
    names = {window.tabs.tabText(i).replace("&&", "&") for i in range(window.tabs.count())}
    assert names == set(HELP_PAGES)
    for page in HELP_PAGES.values():
        assert page.shows and page.equation and page.try_ and page.paper


def test_f1_opens_the_current_tab_s_help(qtbot, window):
    f1 = action(window, "What Am I Looking At?")
    assert f1.shortcut().toString() == "F1"
    for view, says in ((window.forward_view, "Drag t to 900"), (window.bound_view, "DDPM eq. 5"),
                       (window.sdedit_view, "SDEdit")):
        window.tabs.setCurrentWidget(view)
        f1.trigger()
        dialog = window.help_dialog
        assert dialog.isVisible() and not dialog.isModal()
        assert says in dialog.findChild(QTextBrowser).toPlainText()
        dialog.close()


def test_every_control_has_a_tooltip(window):
    controls = controls_of(window, TYPES)
    assert len(controls) > 80
    bare = [key for key, w in controls.items() if not w.toolTip()]
    assert bare == []
    assert set(TOOLTIPS) <= set(controls), set(TOOLTIPS) - set(controls)  # no tooltip for a control that is gone


def test_the_shortcuts_page_lists_every_shortcut(qtbot, window):
    dialog = show_tab_help(window)
    dialog.close()
    action(window, "Keyboard Shortcuts").trigger()
    text = window.help_dialog.findChild(QTextBrowser).toPlainText()
    shortcuts = [a for a in window.findChildren(QAction) if not a.shortcut().isEmpty()]
    assert len(shortcuts) >= 15
    for a in shortcuts:
        assert a.shortcut().toString() in text, a.text()
    window.help_dialog.close()


def test_the_view_menu_toggles_the_settings_and_log_panels(qtbot, window):
    view_menu = next(m.menu() for m in window.menuBar().actions() if m.text() == "&View")
    for dock in (window.settings_dock, window.log_dock):
        toggle = dock.toggleViewAction()
        assert toggle in view_menu.actions()
        toggle.trigger()
        assert not dock.isVisible()
        toggle.trigger()
        assert dock.isVisible()
