"""The app's icon and ``diffview --install-desktop-entry``."""

from diffview.cli import main
from diffview.desktop import ICON


def test_install_desktop_entry_writes_the_entry_and_the_icon_under_xdg_data_home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert main(["--install-desktop-entry"]) == 0
    entry = tmp_path / "share" / "applications" / "diffview.desktop"
    icon = tmp_path / "share" / "icons" / "hicolor" / "scalable" / "apps" / "diffview.svg"
    assert f"wrote {entry}" in capsys.readouterr().out
    text = entry.read_text()
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert text.startswith("[Desktop Entry]\n") and lines["Type"] == "Application" and lines["Name"] == "diffview"
    assert lines["Icon"] == str(icon) and icon.read_bytes() == ICON.read_bytes()
    assert "diffview" in lines["Exec"] and lines["Exec"].endswith(" %f")


def test_the_window_has_the_icon(window):
    assert ICON.is_file()
    assert not window.windowIcon().isNull()
    assert window.windowIcon().pixmap(64, 64).width() == 64
