"""The command line (``python -m service``): serve, demo, register, verify and convert."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

from service import __version__
from service.settings import Settings
from service.settings import SettingsError
from service.store import ModelStore
from service.store import StoreError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named in ``argv`` and return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prediction-service",
        description="An async, micro-batching prediction server for scikit-learn models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the models in the store over HTTP")
    serve.add_argument("--host", help="interface to bind (PREDICTION_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PREDICTION_PORT, default 5000)")
    _add_store_flag(serve)
    serve.add_argument("--workers", type=int, help="server processes (PREDICTION_WORKERS)")
    serve.add_argument(
        "--default-model", help="model /predict uses when none is named (PREDICTION_DEFAULT_MODEL)"
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, ... (PREDICTION_LOG_LEVEL)")
    serve.set_defaults(command=_serve)

    demo = commands.add_parser("demo", help="train the demo models into the store (idempotent)")
    _add_store_flag(demo)
    demo.set_defaults(command=_demo)

    register = commands.add_parser(
        "register",
        help="add a joblib or skops file as the next version of a model, written as skops",
    )
    register.add_argument(
        "artifact",
        type=Path,
        help="a .skops file, or a joblib/pickle file (unpickled here: only files you trust)",
    )
    register.add_argument("--name", required=True, help="the model's name")
    register.add_argument(
        "--feature-names",
        help="comma-separated feature names (default: the model's feature_names_in_, if any)",
    )
    _add_store_flag(register)
    register.set_defaults(command=_register)

    verify = commands.add_parser(
        "verify", help="check every version's manifest, checksum, format and trust status"
    )
    _add_store_flag(verify)
    verify.set_defaults(command=_verify)

    convert = commands.add_parser(
        "convert",
        help="rewrite every joblib version as skops in place, after checking it predicts the same",
    )
    _add_store_flag(convert)
    convert.set_defaults(command=_convert)

    return parser


def _add_store_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-store",
        type=Path,
        help="store directory (PREDICTION_MODEL_STORE, default model_store)",
    )


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return Settings.from_env(os.environ, {"model_store": args.model_store, **overrides})


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        workers=args.workers,
        default_model=args.default_model,
        log_level=args.log_level.upper() if args.log_level else None,
    )
    # Imported here so that `demo`, `register` and `verify` start without loading Quart.
    from service.logs import configure_logging
    from service.server import serve

    configure_logging(settings.log_level)
    serve(settings)
    return 0


def _store(settings: Settings) -> ModelStore:
    return ModelStore(
        settings.model_store,
        trusted_types=settings.trusted_types,
        allow_pickle=settings.allow_pickle,
    )


def _demo(args: argparse.Namespace) -> int:
    from service.demo import build_demo

    store = _store(_settings(args))
    written = build_demo(store)
    for manifest in written:
        print(f"wrote {manifest.name} version {manifest.version}")
    if not written:
        print(f"demo models already in {store.root}")
    return 0


def _register(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    names = [name.strip() for name in args.feature_names.split(",")] if args.feature_names else None
    try:
        manifest = store.register(args.artifact, args.name, feature_names=names)
    except (StoreError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"registered {manifest.name} version {manifest.version} as {manifest.format} "
        f"(sha256 {manifest.sha256})"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store(settings)
    bad = 0
    checked = 0
    for name in store.names():
        for version in store.versions(name):
            checked += 1
            try:
                manifest = store.verify(name, version)
            except (StoreError, OSError) as error:
                bad += 1
                print(f"BAD {name} version {version}: {error}")
                continue
            if manifest.format == "skops":
                status = "skops, every type trusted"
            else:
                status = (
                    "joblib, a pickle: loading it runs its code "
                    "(`python -m service convert` rewrites it as skops)"
                )
            print(f"ok  {name} version {version}: {status}")
    if bad:
        print(f"{bad} of {checked} versions failed verification", file=sys.stderr)
        return 1
    print(f"all {checked} versions verified")
    return 0


def _convert(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    failed = 0
    converted = 0
    for name in store.names():
        for version in store.versions(name):
            try:
                manifest = store.convert(name, version)
            except (StoreError, OSError) as error:
                failed += 1
                print(f"BAD {name} version {version}: {error}")
                continue
            if manifest is None:
                print(f"ok  {name} version {version}: already skops")
            else:
                converted += 1
                print(
                    f"ok  {name} version {version}: converted to skops (sha256 {manifest.sha256})"
                )
    if failed:
        print(f"{failed} versions could not be converted; they are unchanged", file=sys.stderr)
        return 1
    print(f"converted {converted} versions; every version in {store.root} is skops")
    return 0
