"""``oculi console``."""

from __future__ import annotations

import typer

from oculi.cli.common import console as out


def console(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs OCULI_TOKEN "
                             "(then every page asks for it once: a login form sets a cookie)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    allowed_hosts: str = typer.Option("", "--allowed-hosts", help="Extra names (comma-separated) the console "
                                      "answers to in the Host header, besides localhost and the bound address "
                                      "(a leading dot: its subdomains). Also OCULI_ALLOWED_HOSTS."),
) -> None:
    """Serve the web console: jobs with live curves and logs, the new-job form, models, datasets with their data
    check and endpoints with a try-it box. It also serves the control plane's REST API (/api/training-jobs, what
    `oculi jobs serve` serves) and runs the job queue. Everything it uses ships in the package: it works offline.

    Example: oculi console --port 8000

    Example: OCULI_TOKEN=$(openssl rand -hex 16) oculi console --host 0.0.0.0
    """
    from oculi.console.app import serve
    from oculi.serving.guard import split_hosts

    serve(host, port, allowed_hosts=split_hosts(allowed_hosts), echo=out.print)
