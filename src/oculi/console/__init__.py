"""The console: a web UI over everything oculi records — jobs with live curves and logs, the new-job form,
models, datasets and endpoints. A FastAPI app of server-rendered Jinja2 pages plus small ES modules (no build
step, no CDN); every page calls the same Python API the CLI calls (:mod:`oculi.jobs`, :mod:`oculi.artifacts`,
:mod:`oculi.tasks`, :mod:`oculi.data.checks`). Start it with ``oculi console`` (:func:`oculi.console.app.serve`)."""
