"""The command line: demo, register, verify, convert (serve: see the real-server tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from service.cli import main
from service.store import ModelStore
from service.store.features import Feature
from service.store.features import FeatureSchema
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


HOMES_CSV = "city,garden,price\nparis,true,100\nrome,,200\noslo,false,50\nrome,true,80\n"


@pytest.fixture(name="homes_artifact")
def _homes_artifact(tmp_path: Path) -> Path:
    """A joblib pipeline fitted on a table: city one-hot encoded, garden passed through."""
    table = pd.DataFrame(
        {"city": ["paris", "rome", "oslo", "rome"], "garden": [1.0, 0.0, 0.0, 1.0]}
    )
    columns = ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough")
    artifact = tmp_path / "homes.joblib"
    joblib.dump(make_pipeline(columns, LogisticRegression()).fit(table, [0, 1, 1, 0]), artifact)
    return artifact


def test_register_example_writes_the_schema(
    tmp_path: Path, store_root: Path, homes_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """register --example types the columns from a CSV file and prints the schema."""
    example = tmp_path / "homes.csv"
    example.write_text(HOMES_CSV)

    code = main(
        [
            "register",
            str(homes_artifact),
            "--name",
            "homes",
            "--example",
            str(example),
            "--model-store",
            str(store_root),
        ]
    )

    assert 0 == code
    assert "features: city string (3 categories), garden bool nullable" in capsys.readouterr().out
    assert ModelStore(store_root).read_manifest("homes", 1).features == FeatureSchema(
        (
            Feature("city", "string", categories=("oslo", "paris", "rome")),
            Feature("garden", "bool", nullable=True),
        )
    )


def test_register_schema_file_wins(tmp_path: Path, store_root: Path, homes_artifact: Path) -> None:
    """register --schema records the schema file as it is."""
    schema = FeatureSchema(
        (Feature("city", "string", categories=("oslo", "paris", "rome")), Feature("garden", "int"))
    )
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(schema.to_json()))

    code = main(
        [
            "register",
            str(homes_artifact),
            "--name",
            "homes",
            "--schema",
            str(schema_file),
            "--model-store",
            str(store_root),
        ]
    )

    assert 0 == code
    assert schema == ModelStore(store_root).read_manifest("homes", 1).features


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((), "cannot tell the type of column 'garden'"),
        (("--example", "absent.csv"), "Cannot read the example"),
        (("--schema", "schema.json"), "names the columns town but the model was fitted on city"),
    ],
    ids=["untyped-column", "missing-example", "schema-of-other-columns"],
)
def test_register_refuses_what_cannot_be_typed(
    tmp_path: Path,
    store_root: Path,
    homes_artifact: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    message: str,
) -> None:
    """register exits 1 with the reason on stderr, and adds no version."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schema.json").write_text(json.dumps([{"name": "town", "type": "string"}]))

    code = main(
        [
            "register",
            str(homes_artifact),
            "--name",
            "homes",
            "--model-store",
            str(store_root),
            *flags,
        ]
    )

    assert 1 == code
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert [] == ModelStore(store_root).versions("homes")
