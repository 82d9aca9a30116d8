"""Figures for the console (prints them; not part of the test run):

1. Server time of the jobs list and of a job page with a full store: a SQLite job store — then a PostgreSQL one,
   a throw-away server (:func:`tests.postgres.throwaway_postgres`) where its binaries are installed — filled with
   ``--jobs`` jobs (10,000) × ``--epochs`` epochs (100) × 5 metrics (5 million metric rows), the console served by
   uvicorn on loopback, each page requested ``--requests`` times: p50 / p95 milliseconds (request to last byte, over
   loopback). Pages: the first and a deep page of the list, the list filtered by status and by a part of the name,
   and job pages of random jobs (500 metric points each).
2. Delay from an epoch's end (its metrics written to the store) to the point drawn on an open job page in headless
   Chromium (skipped when Chromium or Playwright is missing): a writer adds an epoch every second.
3. Size of what the console adds to the package: static assets (JS, CSS, SVG) and templates, raw and gzipped.

Usage: python bench/console_latency.py [--jobs 10000] [--epochs 100] [--requests 50] [--home DIR] [--no-postgres]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.postgres: the throw-away PostgreSQL server

METRICS = ("train:loss", "train:accuracy", "validation:loss", "validation:accuracy", "learning_rate")


def fill(store, home: Path, jobs: int, epochs: int) -> list[str]:
    """Write ``jobs`` finished jobs with ``epochs`` × 5 metrics each straight into ``store``'s tables (SQLite:
    executemany; PostgreSQL: COPY)."""
    store.engine  # noqa: B018 - creates the schema and its indexes
    now = time.time() - jobs * 60
    names = [f"bench-{n:05d}" for n in range(jobs)]
    statuses = ("Completed", "Failed", "Stopped")
    rows, transitions = [], []
    for n, name in enumerate(names):
        status = statuses[n % 7 % 3]
        created = now + n * 60
        final = json.dumps({"validation:accuracy": 0.5 + n % 50 / 100, "validation:loss": 1 - n % 50 / 100})
        rows.append((name, "training" if n % 10 else "transform", "image-classification", status, status,
                     '{"attached": true, "channels": {"train": "/data/train"}, "hyperparameters": {"epochs": "100"}}',
                     '{"epochs": 100, "learning_rate": 0.1}', f"{home}/jobs/{name}", f"{home}/jobs/{name}/model",
                     f"{home}/jobs/{name}/train.log", created, created + 5, created + 50, created + 50,
                     final, 1))
        for k, s in enumerate(("Pending", "Starting", "Training", "Uploading", status)):
            transitions.append((name, s, s, created + k, "bench"))
    tables = {
        "jobs": ("name, kind, algorithm, status, secondary_status, spec, hyperparameters, job_dir, model_dir, "
                 "log_path, created_at, training_start, training_end, updated_at, final_metrics, attempts"),
        "job_transitions": "job, status, secondary_status, time, message",
        "job_metrics": "job, epoch, step, name, value, time"}

    def metric_rows(start: int) -> list[tuple]:
        return [(name, epoch, epoch * 10, metric, 1 / (epoch + k), now + epoch)
                for name in names[start:start + 500] for epoch in range(1, epochs + 1)
                for k, metric in enumerate(METRICS)]

    connection = store.engine.raw_connection()
    try:
        cursor = connection.cursor()
        postgres = store.engine.dialect.name == "postgresql"

        def insert(table: str, values: list[tuple]) -> None:
            if postgres:
                with cursor.copy(f"COPY {table} ({tables[table]}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(values[0]))
                cursor.executemany(f"INSERT INTO {table} ({tables[table]}) VALUES ({marks})", values)

        insert("jobs", rows)
        insert("job_transitions", transitions)
        for start in range(0, jobs, 500):
            insert("job_metrics", metric_rows(start))
        connection.commit()
        if postgres:
            cursor.execute("ANALYZE")
            connection.commit()
    finally:
        connection.close()
    return names


def timings(url: str, paths: list[str], repeats: int) -> tuple[float, float]:
    """p50 and p95 milliseconds of GETting ``paths`` (cycled) ``repeats`` times."""
    import httpx

    seconds = []
    with httpx.Client(headers={"Accept": "text/html"}) as client:
        client.get(url + paths[0])  # warm-up
        for n in range(repeats):
            start = time.perf_counter()
            response = client.get(url + paths[n % len(paths)])
            seconds.append(time.perf_counter() - start)
            assert response.status_code == 200, (paths[n % len(paths)], response.status_code, response.text[:300])
    seconds.sort()
    return statistics.median(seconds) * 1000, seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))] * 1000


def live_delay(url: str, epochs: int = 10) -> list[float] | None:
    """Seconds from each epoch's metrics written to the point drawn on the open job page (None: no browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").exists():
        return None
    from oculi.jobs.store import JobStore

    store = JobStore()
    name = "bench-live"
    store.create({"name": name, "algorithm": "image-classification", "job_dir": "/tmp", "model_dir": "/tmp/none",
                  "log_path": "/tmp/none.log", "spec": {"attached": True, "hyperparameters": {}}})
    for status in ("Starting", "Training"):
        store.transition(name, status, "bench")
    delays = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page()
        page.goto(f"{url}/jobs/{name}")
        for epoch in range(1, epochs + 1):
            time.sleep(1.0)
            store.add_metrics(name, {"train:loss": 1 / epoch, "validation:accuracy": 1 - 1 / epoch}, epoch=epoch)
            written = store.metrics_after(name)[-1]["time"]
            while int(page.evaluate("document.getElementById('charts').dataset.points || 0")) < 2 * epoch:
                time.sleep(0.02)
            delays.append(time.time() - written)
        browser.close()
    return delays


def asset_sizes() -> tuple[int, int, int]:
    """(files, bytes, gzipped bytes) of the console's static assets and templates."""
    import oculi.console

    root = Path(oculi.console.__file__).parent
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".js", ".css", ".svg", ".html")]
    return len(files), sum(p.stat().st_size for p in files), sum(len(gzip.compress(p.read_bytes())) for p in files)


def measure(label: str, home: Path, args: argparse.Namespace) -> None:
    """Fill the store ``OCULI_DATABASE_URL`` (or SQLite in ``home``) names, serve the console on it, print its
    figures, each line headed by ``label``."""
    from oculi.console.app import create_app
    from oculi.jobs.store import JobStore
    from oculi.serving.server import BackgroundServer

    start = time.perf_counter()
    names = fill(JobStore(), home, args.jobs, args.epochs)
    print(f"[{label}] store: {args.jobs} jobs × {args.epochs} epochs × {len(METRICS)} metrics "
          f"({args.jobs * args.epochs * len(METRICS):,} metric rows) written in {time.perf_counter() - start:.0f} s")
    server = BackgroundServer(create_app(dispatch_loop=False)).start()
    try:
        rng = random.Random(0)
        cases = {
            "jobs list, page 1": ["/jobs"],
            "jobs list, page 150": ["/jobs?page=150"],
            "jobs list, status=Failed": ["/jobs?status=Failed"],
            "jobs list, name contains '0042'": ["/jobs?name=0042"],
            "job page (500 metric points)": [f"/jobs/{rng.choice(names)}" for _ in range(args.requests)],
        }
        for title, paths in cases.items():
            p50, p95 = timings(server.url, paths, args.requests)
            print(f"[{label}] {title:38s}{'':{10 - len(label)}} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
        delays = live_delay(server.url)
        if delays is None:
            print(f"[{label}] epoch → point on an open job page: skipped (needs Chromium and playwright)")
        else:
            print(f"[{label}] epoch → point on an open job page: median {statistics.median(delays):.2f} s, "
                  f"max {max(delays):.2f} s over {len(delays)} epochs")
    finally:
        server.stop()


def main() -> None:
    """Fill a SQLite store, then a PostgreSQL one where its binaries are installed, serve the console on each, print
    the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--home", type=Path, help="OCULI_HOME to fill (default: a temp folder, removed at the end)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="oculi-console-bench-"))
    os.environ["OCULI_HOME"] = str(home)
    os.environ.pop("OCULI_DATABASE_URL", None)
    try:
        measure("sqlite", home, args)
        print(f"[sqlite] database file {(home / 'oculi.db').stat().st_size / 2**20:.0f} MiB")
        if not args.no_postgres:
            from tests.postgres import PostgresUnavailable, throwaway_postgres

            try:
                with throwaway_postgres() as url:
                    os.environ["OCULI_DATABASE_URL"] = url
                    measure("postgresql", home, args)
            except PostgresUnavailable as e:
                print(f"[postgresql] skipped: {e}")
            finally:
                os.environ.pop("OCULI_DATABASE_URL", None)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    files, raw, packed = asset_sizes()
    print(f"console assets: {files} files (static JS/CSS/SVG + templates), {raw / 1024:.1f} KiB, "
          f"{packed / 1024:.1f} KiB gzipped")


if __name__ == "__main__":
    main()
