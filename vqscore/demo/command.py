"""`vqscore demo`: serve the web demo (vqscore/demo/app.py) with Streamlit on localhost.

The models are loaded and warmed up in this process before the server starts listening, so the first visitor's
first score costs only the scoring itself; the page's scripts run in the same process and share them. Streamlit is
imported only here (the optional `demo` extra)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_UPLOAD_MB = 50
APP = Path(__file__).with_name("app.py")


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="serve the web demo: score, see where quality drops, enhance with the ensemble, listen and compare",
        description=(
            "Serve the web demo on http://HOST:PORT (localhost only by default): upload a file (any format and rate "
            "the library reads) or record from the microphone, or pick a synthesised example clip; see the VQScore "
            "on its scale, the per-frame curve under the waveform and spectrogram with the regions where quality "
            "drops, and every ensemble member's enhanced output with its score. Needs the 'demo' extra "
            "(pip install 'vqscore[demo]'). Ctrl-C stops it."
        ),
    )
    demo.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)")
    demo.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 exposes it to the network)",
    )
    demo.add_argument(
        "--ensemble",
        default="default",
        metavar="E",
        help="enhancement ensemble: a shipped ensemble name or an ensemble JSON/YAML file (default: %(default)s)",
    )
    demo.add_argument(
        "--model", default="default", help="QE model for the score: shipped bundle name, bundle JSON or official checkpoint (default: %(default)s)"
    )
    demo.add_argument(
        "--max-upload-mb",
        type=int,
        default=DEFAULT_MAX_UPLOAD_MB,
        metavar="MB",
        help="largest upload accepted, in MB; larger files are refused on the page (default: %(default)s)",
    )
    demo.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch CPU threads (default: %(default)s: one request is computed at a time, and one thread is the "
        "fastest on a shared machine)",
    )
    demo.set_defaults(func=cmd_demo)


def warm_up(model: str, ensemble: str) -> None:
    """Load the model and the ensemble and run each once on a short clip (first calls pay one-off costs); a
    failure is reported here and again on the page, and the server starts anyway."""
    from . import analysis as A
    from . import examples as E
    from . import plots as P

    start = time.perf_counter()
    clip = A.decode(E.example_wav("voice-noise-burst"), "warm-up.wav")
    short = A.Clip("warm-up.wav", clip.samples[: A.RATE], A.RATE, 1, 0)
    try:
        analysis = A.analyse(A.get_model(model), short)
        P.png(P.quality_figure(short, analysis))
        print(f"vqscore demo: scoring model {A.get_model(model).tag} ready", file=sys.stderr)
    except A.DemoError as error:
        print(f"vqscore demo: warning: {error} (the page will say so)", file=sys.stderr)
    try:
        ens = A.get_ensemble(ensemble)
        A.enhance_clip(ens, short)
        print(f"vqscore demo: ensemble {ensemble!r} ready: {', '.join(ens.member_names)}", file=sys.stderr)
    except A.DemoError as error:
        print(f"vqscore demo: warning: {error} (the page will say so; scoring still works)", file=sys.stderr)
    print(f"vqscore demo: warmed up in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def port_problem(host: str, port: int) -> str:
    """Why the server could not listen on host:port ("" if it can), found before the models are loaded."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"unknown host: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from streamlit.web import cli as streamlit_cli
    except ImportError:
        print("vqscore demo: error: the demo needs the 'demo' extra: pip install 'vqscore[demo]'", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"vqscore demo: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    if args.max_upload_mb < 1 or args.threads < 1:
        print("vqscore demo: error: --max-upload-mb and --threads must be at least 1", file=sys.stderr)
        return 2
    busy = port_problem(args.host, args.port)
    if busy:
        print(f"vqscore demo: error: cannot listen on {args.host}:{args.port} ({busy}); choose another --port or --host", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    os.environ["VQSCORE_DEMO_MODEL"] = args.model
    os.environ["VQSCORE_DEMO_ENSEMBLE"] = args.ensemble
    os.environ["VQSCORE_DEMO_MAX_UPLOAD_MB"] = str(args.max_upload_mb)
    warm_up(args.model, args.ensemble)
    argv = [
        "run",
        str(APP),
        f"--server.port={args.port}",
        f"--server.address={args.host}",
        "--server.headless=true",
        f"--server.maxUploadSize={args.max_upload_mb}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        f"--browser.serverAddress={args.host}",
        f"--browser.serverPort={args.port}",
        "--client.toolbarMode=viewer",
        "--theme.base=light",
        "--global.developmentMode=false",
    ]
    try:
        streamlit_cli.main(args=argv, prog_name="streamlit", standalone_mode=False)
    except SystemExit as exc:  # click's exit after the server stops
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    return 0
