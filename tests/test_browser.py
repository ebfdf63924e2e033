"""In a real browser: JupyterLab runs notebooks 00, 02 and 04, shows their widgets, and a
moved slider changes the Dice text.

The test starts JupyterLab on 127.0.0.1 (on copies of the notebooks, so that autosave
never touches the repository), drives Debian's Chromium with Playwright, and stops the
server and every kernel it started. Without Chromium or Playwright it is skipped, saying
how to enable it; ``.ci/run`` installs Chromium, so CI always runs it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser")
                 if shutil.which(name)), None)
HOW_TO = ("install Debian's Chromium (sudo apt-get install chromium; .ci/run does) and "
          "Playwright (pip install -e '.[dev]'); Playwright's own browser download is not "
          "needed")

try:
    import playwright.sync_api  # noqa: F401
except ImportError:  # pragma: no cover - depends on the machine
    pytestmark = pytest.mark.skip(reason=f"Playwright is not installed: {HOW_TO}")
else:
    pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium found: {HOW_TO}")

# every code cell has run and the kernel is idle again
ALL_CELLS_RAN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext.session) return false;
  const kernel = panel.sessionContext.session.kernel;
  const code = panel.content.widgets.filter(cell => cell.model.type === 'code');
  const failed = code.some(cell => cell.model.outputs.toJSON()
                                        .some(output => output.output_type === 'error'));
  return kernel && kernel.status === 'idle' && code.length > 0 &&
         (failed || code.every(cell => cell.model.executionCount !== null));
}"""  # (or stopped at an error: run-all skips the cells after it)
ERRORS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(cell => cell.model.type === 'code')
  .flatMap(cell => cell.model.outputs.toJSON())
  .filter(output => output.output_type === 'error')
  .map(output => output.ename + ': ' + output.evalue)"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on copies of the notebooks; stopped with its kernels after."""
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", work / "notebooks",
                    ignore=shutil.ignore_patterns("*.py"))
    runtime = work / "runtime"
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, SLICREG_PRESET="smoke", JUPYTER_RUNTIME_DIR=str(runtime),
               JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_DATA_DIR=str(work / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"))
    env.pop("MPLBACKEND", None)  # the kernels draw inline, as for a student
    log = open(work / "server.log", "wb")  # a file, not a pipe: a full pipe would block it
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", "--expose-app-in-browser",
         f"--ServerApp.root_dir={work}", "--ServerApp.open_browser=False",
         "--allow-root"],  # CI machines often run as root
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            _get(f"{url}/api/status?token={token}")
            break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError((work / "server.log").read_text(errors="replace")[-3000:]
                                   ) from None
            time.sleep(0.5)
    yield {"url": url, "token": token, "work": work}
    try:
        request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(request, timeout=10)
        server.wait(timeout=60)
    except Exception:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    log.close()
    # no kernel of this server may outlive it (their connection files are in `runtime`)
    left = subprocess.run(["pgrep", "-f", str(runtime)], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"kernels still running: {left.stdout}"


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


# the notebook `name` is the current tab and its kernel is ready
NOTEBOOK_READY = """([name]) => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return !!panel && panel.title.label === name && !!session && !!session.kernel &&
         session.kernel.status === 'idle';
}"""


def _run_notebook(page, lab, name: str) -> None:
    # a workspace of its own (reset), so that no tab of an earlier notebook is restored
    page.goto(f"{lab['url']}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb"
              f"?reset&token={lab['token']}")
    page.wait_for_function(NOTEBOOK_READY, arg=[f"{name}.ipynb"], timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_CELLS_RAN, timeout=420_000, polling=1000)
    assert page.evaluate(ERRORS) == []


def _widgets_rendered(page) -> None:
    page.wait_for_selector(".jupyter-widgets.widget-slider", timeout=60_000)
    text = page.evaluate("() => window.jupyterapp.shell.currentWidget.node.textContent")
    assert "Loading widget" not in text
    for representation in ("VBox(children=", "IntSlider(value=", "HTML(value="):
        assert representation not in text, "a widget shown as text: no widget manager"


# the text of the last panel that reports a Dice
DICE_TEXT = """() => [...document.querySelectorAll('.widget-html-content')]
  .map(node => node.textContent).filter(text => text.includes('avg(4) Dice')).pop() || ''"""
# (textContent: innerText is empty for cells JupyterLab has not rendered off screen)


def _move_slider_and_wait_for_dice(page, description: str) -> tuple[str, str]:
    before = page.evaluate(DICE_TEXT)
    assert before, "no Dice text to watch"
    panel = page.locator(".widget-vbox", has=page.locator(".widget-html-content",
                                                          has_text="avg(4) Dice")).last
    panel.scroll_into_view_if_needed()
    slider = panel.locator(".widget-slider", has=page.locator(
        "label", has_text=description)).first
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"([before]) => {{ const text = ({DICE_TEXT})(); "
                           "return text !== before && text.includes('avg(4) Dice'); }",
                           arg=[before], timeout=120_000)
    return before, page.evaluate(DICE_TEXT)


@pytest.mark.parametrize("name, slider", [("00_data", None), ("02_deeds_supervision", "alpha"),
                                          ("04_adam_registration", "alpha")])
def test_notebook_widgets_render_and_respond_in_chromium(page, lab, name, slider):
    start = time.perf_counter()
    _run_notebook(page, lab, name)
    _widgets_rendered(page)
    if slider is not None:
        moved = time.perf_counter()
        before, after = _move_slider_and_wait_for_dice(page, slider)
        print(f"{name}: {slider} moved; Dice text updated in "
              f"{time.perf_counter() - moved:.2f} s: {before!r} -> {after!r}")
        assert after != before and "avg(4) Dice" in after
    shots = Path(os.environ.get("SLICREG_SCREENSHOTS", lab["work"] / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
    print(f"{name}: ran in {time.perf_counter() - start:.0f} s; screenshot "
          f"{shots / f'{name}.png'}")
