"""The command line (``python -m service``): serve, demo, register, verify and convert."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from service import __version__
from service.settings import Settings
from service.settings import SettingsError

if TYPE_CHECKING:
    from service.store import ModelStore
    from service.store.features import FeatureSchema

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
    serve.add_argument(
        "--log-format",
        help="auto (console on a terminal, else JSON), json or console (PREDICTION_LOG_FORMAT)",
    )
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
    register.add_argument(
        "--example",
        type=Path,
        metavar="FILE",
        help="rows of the table the model takes (.csv with a header, or .json list of objects): "
        "their dtypes and missing values type the feature schema",
    )
    register.add_argument(
        "--schema",
        type=Path,
        metavar="FILE",
        help="the feature schema as a JSON list of {name, type, nullable, categories} objects; "
        "wins over inference",
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
        log_format=args.log_format.lower() if args.log_format else None,
    )
    # Imported here so that `demo`, `register` and `verify` start without them. Neither imports
    # the app: with several workers this process only supervises them.
    from service.logs import configure_logging
    from service.server import StartupError
    from service.server import serve

    configure_logging(settings.log_level, settings.log_format)
    try:
        serve(settings)
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
    return 0


def _store(settings: Settings) -> ModelStore:
    # Imported here, not at the top: the store pulls in numpy and scikit-learn, which --help and
    # the supervisor never need.
    from service.store import ModelStore

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
    from service.store import StoreError
    from service.store.schema import read_example
    from service.store.schema import read_schema

    store = _store(_settings(args))
    names = [name.strip() for name in args.feature_names.split(",")] if args.feature_names else None
    try:
        # Read before the artifact: a typo in a path fails fast, without unpickling anything.
        example = None if args.example is None else read_example(args.example)
        schema = None if args.schema is None else read_schema(args.schema)
        manifest = store.register(
            args.artifact, args.name, feature_names=names, features=schema, example=example
        )
    except (StoreError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"registered {manifest.name} version {manifest.version} as {manifest.format} "
        f"(sha256 {manifest.sha256})"
    )
    if manifest.features is not None:
        print(f"features: {_described(manifest.features)}")
    return 0


def _described(schema: FeatureSchema) -> str:
    """One line per schema, e.g. ``age int, income float nullable, city string (3 categories)``."""
    parts = []
    for feature in schema.features:
        part = f"{feature.name} {feature.type}"
        if feature.nullable:
            part += " nullable"
        if feature.categories is not None:
            part += f" ({len(feature.categories)} categories)"
        parts.append(part)
    return ", ".join(parts)


def _verify(args: argparse.Namespace) -> int:
    store = _store(_settings(args))

    def verify(name: str, version: int) -> str:
        if store.verify(name, version).format == "skops":
            return "skops, every type trusted"
        return (
            "joblib, a pickle: loading it runs its code "
            "(`python -m service convert` rewrites it as skops)"
        )

    checked, bad = _each_version(store, verify)
    if bad:
        print(f"{bad} of {checked} versions failed verification", file=sys.stderr)
        return 1
    print(f"all {checked} versions verified")
    return 0


def _convert(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    converted = 0

    def convert(name: str, version: int) -> str:
        nonlocal converted
        manifest = store.convert(name, version)
        if manifest is None:
            return "already skops"
        converted += 1
        return f"converted to skops (sha256 {manifest.sha256})"

    _, failed = _each_version(store, convert)
    if failed:
        print(f"{failed} versions could not be converted; they are unchanged", file=sys.stderr)
        return 1
    print(f"converted {converted} versions; every version in {store.root} is skops")
    return 0


def _each_version(store: ModelStore, act: Callable[[str, int], str]) -> tuple[int, int]:
    """Run ``act`` on every version, printing ``ok`` with what it says or ``BAD`` with the
    error; return (versions seen, versions that failed)."""
    from service.store import StoreError

    seen = failed = 0
    for name in store.names():
        for version in store.versions(name):
            seen += 1
            try:
                status = act(name, version)
            except (StoreError, OSError) as error:
                failed += 1
                print(f"BAD {name} version {version}: {error}")
                continue
            print(f"ok  {name} version {version}: {status}")
    return seen, failed
