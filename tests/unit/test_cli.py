"""The command line: demo, register, verify, convert (serve: see the real-server tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from service.cli import main
from service.store import ModelStore
from tests.custom_types import CLIP
from tests.custom_types import Clip


def test_demo_builds_then_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """demo writes the demo models once; a second run writes nothing."""
    store = tmp_path / "store"

    assert 0 == main(["demo", "--model-store", str(store)])
    assert 0 == main(["demo", "--model-store", str(store)])

    out = capsys.readouterr().out
    assert "wrote iris version 1" in out
    assert "demo models already in" in out
    assert [1] == ModelStore(store).versions("iris")


def test_register_adds_next_version(
    tmp_path: Path, store_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """register adds an artifact as the next version, with feature names from the flag."""
    model = LogisticRegression().fit([[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0])
    artifact = tmp_path / "lr.joblib"
    joblib.dump(model, artifact)

    code = main(
        [
            "register",
            str(artifact),
            "--name",
            "iris",
            "--feature-names",
            "x, y",
            "--model-store",
            str(store_root),
        ]
    )

    assert 0 == code
    assert "registered iris version 2" in capsys.readouterr().out
    assert ("x", "y") == ModelStore(store_root).read_manifest("iris", 2).feature_names


def test_register_refuses_non_model(
    tmp_path: Path, store_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """register refuses a file that is not a model, exit 1, and adds no version."""
    artifact = tmp_path / "junk.joblib"
    artifact.write_bytes(b"not a pickle")

    code = main(["register", str(artifact), "--name", "iris", "--model-store", str(store_root)])

    assert 1 == code
    assert capsys.readouterr().err.startswith("error: ")
    assert [1] == ModelStore(store_root).versions("iris")


def test_verify_passes_clean_store(store_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify exits 0 when every version checks out."""
    assert 0 == main(["verify", "--model-store", str(store_root)])
    assert "all 3 versions verified" in capsys.readouterr().out


def test_verify_names_each_bad_version(
    store_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify exits 1 and names every version whose checksum or manifest is bad."""
    (store_root / "iris" / "1" / "model.skops").write_bytes(b"tampered")
    manifest = store_root / "diabetes" / "1" / "model.json"
    manifest.write_text(
        json.dumps({**json.loads(manifest.read_text()), "framework_version": "0.1"})
    )

    code = main(["verify", "--model-store", str(store_root)])

    out = capsys.readouterr().out
    assert 1 == code
    assert "BAD iris version 1" in out
    assert "BAD diabetes version 1" in out


def test_bad_setting_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad PREDICTION_* variable is reported in one line with exit code 2."""
    monkeypatch.setenv("PREDICTION_MODEL_STORE", "")

    assert 2 == main(["verify"])
    assert "PREDICTION_MODEL_STORE has value ''" in capsys.readouterr().err


# What neither --help nor the supervising parent needs: the app, the models, the store's formats.
HEAVY_MODULES = {"numpy", "sklearn", "scipy", "skops", "joblib", "quart"}


@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.argv = ['service', '--help']; import runpy\n"
        "try:\n    runpy.run_module('service', run_name='__main__')\nexcept SystemExit:\n    pass",
        "import service.server",
    ],
    ids=["help", "supervisor"],
)
def test_help_and_supervisor_import_no_heavy_module(code: str) -> None:
    """`python -m service --help` and the supervisor's module import no numpy, sklearn or quart."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}}))"

    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    loaded = set(json.loads(result.stdout.splitlines()[-1].replace("'", '"')))
    assert set() == HEAVY_MODULES & loaded


def test_register_refuses_untrusted_type_naming_it(
    tmp_path: Path,
    store_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """register exits 1 naming a type that is not trusted, and takes it once it is listed."""
    model = make_pipeline(Clip(), LogisticRegression()).fit([[0, 0], [1, 1], [0, 1]], [0, 1, 1])
    artifact = tmp_path / "clip.joblib"
    joblib.dump(model, artifact)
    command = ["register", str(artifact), "--name", "clip", "--model-store", str(store_root)]

    assert 1 == main(command)
    assert CLIP in capsys.readouterr().err
    monkeypatch.setenv("PREDICTION_TRUSTED_TYPES", CLIP)
    assert 0 == main(command)
    assert "registered clip version 1 as skops" in capsys.readouterr().out


def test_convert_then_verify_report_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify names each version's format; convert makes every joblib version skops."""
    root = tmp_path / "store"
    store = ModelStore(root)
    model = LogisticRegression().fit([[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0])
    store.save(model, "legacy", format="joblib")
    store.save(model, "legacy")

    assert 0 == main(["verify", "--model-store", str(root)])
    out = capsys.readouterr().out
    assert "ok  legacy version 1: joblib, a pickle" in out
    assert "ok  legacy version 2: skops, every type trusted" in out

    assert 0 == main(["convert", "--model-store", str(root)])
    out = capsys.readouterr().out
    assert "ok  legacy version 1: converted to skops" in out
    assert "ok  legacy version 2: already skops" in out
    assert ["skops", "skops"] == [store.read_manifest("legacy", v).format for v in (1, 2)]


def test_verify_fails_pickles_when_not_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With PREDICTION_ALLOW_PICKLE=false, verify reports a joblib version as bad."""
    root = tmp_path / "store"
    model = LogisticRegression().fit([[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0])
    ModelStore(root).save(model, "legacy", format="joblib")
    monkeypatch.setenv("PREDICTION_ALLOW_PICKLE", "false")

    assert 1 == main(["verify", "--model-store", str(root)])
    assert "BAD legacy version 1: " in capsys.readouterr().out
