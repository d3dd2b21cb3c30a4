"""What one student sees in a real browser (Playwright + Debian chromium, no browser download).

    .venv/bin/python bench/bench_browser.py [--Ts 32,128,256,1024] [--steps 12] [--quick]
        [--url http://127.0.0.1:8501] [--processes N]

Starts `opmerge dashboard` on 127.0.0.1 (temporary OPMERGE_HOME; or drives ``--url``), opens one tab
in chromium (``CHROMIUM_PATH``, default /usr/bin/chromium) at 1280×720 and measures, in the page's
own clock (``performance.now()``):

* **λ step on stage** — presentation mode (``?present=1``), the λ slider focused, one arrow key:
  time from the keydown to the moment the "W2 of the optimum" metric shows the new optimum (a
  MutationObserver on the metric). ``--steps`` steps right then as many left across the transition
  (λ 0.8 … 2.5, where the DP decides), at each T of ``--Ts``; each T is loaded and stepped once
  before the timed steps (warm), and a step waits until the page is complete before the next one
  (a presenter pausing). Target: p95 ≤ 0.2 s at every T ≤ 1024.
* **new page, complete** — every page of the navigation bar, warm (visited once before): time from
  the navigation to the page complete — connected, script finished, no skeleton, no placeholder
  (progress bar) and every Plotly figure drawn. Twice per page: a click on the navigation bar (the
  app stays loaded) and a typed URL (a new load of the app, the browser's HTTP cache warm). Target:
  ≤ 2 s.

Printed: per T the steps' p50 / p95 / max, per page both times, and the targets met or not. The
machine may be shared (the load average is printed): the coordinator's table comes from a quiet run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import stclient  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 720}
STEP_FROM = "0.8"                         # the λ steps start here and go right, then back left
STEP_TARGET, PAGE_TARGET = 0.2, 2.0       # seconds
TIMEOUT_MS = 120_000

# Resolves when the "W2 of the optimum" metric's text changes: the time of the last keydown and of the
# change, in the page's clock.
ARM_METRIC = """() => {
  const card = [...document.querySelectorAll('[data-testid="stMetric"]')]
      .find(c => c.innerText.includes('W2 of the optimum'));
  const value = card.querySelector('[data-testid="stMetricValue"]');
  const before = value.innerText;
  window.__step = {key: null, changed: null, before, after: null};
  document.addEventListener('keydown', () => { window.__step.key = performance.now(); },
                            {capture: true, once: true});
  const obs = new MutationObserver(() => {
    const now = [...document.querySelectorAll('[data-testid="stMetric"]')]
        .find(c => c.innerText.includes('W2 of the optimum'));
    const text = now && now.querySelector('[data-testid="stMetricValue"]').innerText;
    if (text && text !== before && window.__step.changed === null) {
      window.__step.changed = performance.now(); window.__step.after = text; obs.disconnect();
    }
  });
  obs.observe(document.querySelector('[data-testid="stMain"]'),
              {subtree: true, childList: true, characterData: true});
}"""

# The page is complete: connected, the script finished, nothing pending, every figure drawn.
COMPLETE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testConnectionState !== 'CONNECTED'
      || app.dataset.testScriptState !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stProgress"]')) return false;
  const plots = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  return plots.every(p => p.querySelector('.js-plotly-plot .main-svg'));
}"""


def pct(xs: list[float], q: float) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q) - 1]


def wait_complete(page, timeout_ms: int = TIMEOUT_MS) -> None:
    page.wait_for_timeout(200)            # let a just-sent rerun flip the script state first
    page.wait_for_function(COMPLETE, timeout=timeout_ms, polling=25)


def lam_steps(page, url: str, T: int, steps: int) -> list[float]:
    """Seconds from keydown to the new optimum's metric, ``steps`` right then ``steps`` left."""
    page.goto(f"{url}/?present=1&lam={STEP_FROM}&T={T}")
    wait_complete(page)
    slider = page.locator(".st-key-stage").get_by_role("slider").first
    times = []
    for key in ["ArrowRight"] * steps + ["ArrowLeft"] * steps:
        page.evaluate(ARM_METRIC)
        slider.focus()
        page.keyboard.press(key)
        page.wait_for_function("() => window.__step.changed !== null", timeout=TIMEOUT_MS, polling=10)
        step = page.evaluate("() => window.__step")
        times.append((step["changed"] - step["key"]) / 1e3)
        wait_complete(page)               # the presenter waits for the whole page
        page.wait_for_timeout(300)
    return times


def nav_paths(page) -> list[str]:
    """The url paths of the navigation bar's pages ("" = the home page)."""
    hrefs = page.eval_on_selector_all('[data-testid="stTopNavLink"]', "ls => ls.map(l => l.href)")
    return [urlparse(h).path.strip("/") for h in hrefs]


def click_nav(page, url: str, path: str) -> None:
    """Click the page's link in the navigation bar (opening its overflow menu if it is there)."""
    href = f"{url}/{path}"
    link = page.locator(f'[data-testid="stTopNavLink"][href="{href}"]').first
    if link.evaluate("e => !!e.closest('[inert]')"):           # in the "N more" overflow menu
        page.locator('[data-testid="stTopNavSection"]').last.click()
        link = page.locator(f'[data-testid="stTopNavDropdownLink"][href="{href}"]').first
    link.click()


def page_loads(page, url: str) -> list[tuple[str, float, float]]:
    """(page, seconds to complete after a navigation-bar click, after a typed URL), warm."""
    page.goto(url)
    wait_complete(page)
    paths = nav_paths(page)
    for path in paths:                    # warm: every page once (server caches, browser cache)
        page.goto(f"{url}/{path}")
        wait_complete(page)
    out = []
    for path in paths:
        page.goto(f"{url}/{'about' if path != 'about' else ''}")    # start from another page
        wait_complete(page)
        t0 = time.perf_counter()
        click_nav(page, url, path)
        page.wait_for_url(f"{url}/{path}*", timeout=TIMEOUT_MS)
        wait_complete(page)
        clicked = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.goto(f"{url}/{path}")
        wait_complete(page)
        out.append((path or "phase", clicked, time.perf_counter() - t0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--Ts", default="32,128,256,1024", help="T values of the λ steps")
    ap.add_argument("--steps", type=int, default=12, help="arrow keys each way per T")
    ap.add_argument("--quick", action="store_true", help="T = 32, 1024 and 4 steps each way")
    ap.add_argument("--url", help="drive this server instead of starting one (loopback only)")
    ap.add_argument("--processes", type=int, help="start the web tier with N processes")
    ap.add_argument("--skip-pages", action="store_true", help="only the λ steps")
    args = ap.parse_args()
    Ts = [int(t) for t in ("32,1024" if args.quick else args.Ts).split(",")]
    steps = 4 if args.quick else args.steps
    if not all(2 <= T <= 1024 for T in Ts) or not 1 <= steps <= 40:
        ap.error("T in [2, 1024], 1 ≤ steps ≤ 40")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        print(f"chromium not found at {CHROMIUM} (apt-get install -y chromium, or CHROMIUM_PATH)")
        return 2
    from playwright.sync_api import sync_playwright

    print(f"bench_browser: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine: a quiet run decides)")
    server = None if args.url else stclient.DashboardServer([], processes=args.processes)
    url = args.url or server.url
    ok = True
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            for T in Ts:
                lam_steps(page, url, T, 2)                # warm: the T's caches and the figures
                times = lam_steps(page, url, T, steps)
                met = pct(times, 95) <= STEP_TARGET
                ok &= met
                print(f"λ step on stage, T = {T:4d}: n={len(times)} p50 {pct(times, 50):.3f} s  "
                      f"p95 {pct(times, 95):.3f} s  max {max(times):.3f} s  "
                      f"(target p95 ≤ {STEP_TARGET} s: {'met' if met else 'NOT met'})")
            if not args.skip_pages:
                for path, clicked, typed in page_loads(page, url):
                    met = max(clicked, typed) <= PAGE_TARGET
                    ok &= met
                    print(f"page /{path:<12} complete: navigation click {clicked:.2f} s, typed URL "
                          f"{typed:.2f} s  (target ≤ {PAGE_TARGET} s: {'met' if met else 'NOT met'})")
            browser.close()
    finally:
        if server is not None:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
