"""Settings: defaults, environment parsing, overrides and validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings
from service.settings import SettingsError


class TestFromEnv:
    def test_defaults_without_variables(self) -> None:
        """An empty environment gives the documented defaults."""
        settings = Settings.from_env({})

        assert settings == Settings()
        assert ("127.0.0.1", 5000, Path("model_store")) == (
            settings.host,
            settings.port,
            settings.model_store,
        )

    def test_reads_prefixed_variables_with_types(self) -> None:
        """Each PREDICTION_* variable is parsed to its field's type."""
        settings = Settings.from_env(
            {
                "PREDICTION_PORT": "8080",
                "PREDICTION_MAX_WAIT_MS": "2.5",
                "PREDICTION_MODEL_STORE": "/models",
                "PREDICTION_ALLOW_VERSION_MISMATCH": "true",
                "PREDICTION_DEFAULT_MODEL": "iris",
                "PREDICTION_LOG_LEVEL": "debug",
                "PREDICTION_LOG_FORMAT": "Console",
            }
        )

        assert (8080, 2.5, Path("/models"), True, "iris", "DEBUG", "console") == (
            settings.port,
            settings.max_wait_ms,
            settings.model_store,
            settings.allow_version_mismatch,
            settings.default_model,
            settings.log_level,
            settings.log_format,
        )

    def test_ignores_unprefixed_variables(self) -> None:
        """Variables without the PREDICTION_ prefix have no effect."""
        assert Settings() == Settings.from_env({"PORT": "1", "MAX_BATCH_ROWS": "x"})

    def test_empty_optional_is_none(self) -> None:
        """An empty value of an optional setting means unset."""
        assert Settings.from_env({"PREDICTION_DEFAULT_MODEL": ""}).default_model is None

    def test_overrides_win_over_environment(self) -> None:
        """CLI overrides replace environment values; None overrides are ignored."""
        settings = Settings.from_env(
            {"PREDICTION_PORT": "8080", "PREDICTION_HOST": "0.0.0.0"},
            {"port": 9000, "host": None},
        )

        assert (9000, "0.0.0.0") == (settings.port, settings.host)

    def test_unknown_override_is_a_programming_error(self) -> None:
        """An override naming no setting raises TypeError."""
        with pytest.raises(TypeError, match="nope"):
            Settings.from_env({}, {"nope": 1})

    def test_round_trips_through_to_env(self) -> None:
        """to_env() gives variables that rebuild equal settings (for worker processes)."""
        settings = Settings(port=7000, max_wait_ms=3.0, allow_version_mismatch=True)

        assert settings == Settings.from_env(settings.to_env())

    def test_unit_conversions(self) -> None:
        """Millisecond settings are offered in seconds for the batcher."""
        settings = Settings(max_wait_ms=5.0, request_timeout_ms=250.0)

        assert (0.005, 0.25) == (settings.max_wait_s, settings.request_timeout_s)


class TestValidation:
    @pytest.mark.parametrize(
        ("variable", "value", "expected"),
        [
            ("PREDICTION_PORT", "abc", "PREDICTION_PORT has value 'abc'; expected an integer."),
            (
                "PREDICTION_PORT",
                "70000",
                "PREDICTION_PORT has value 70000; expected an integer from 0 to 65535.",
            ),
            (
                "PREDICTION_MAX_WAIT_MS",
                "soon",
                "PREDICTION_MAX_WAIT_MS has value 'soon'; expected a number.",
            ),
            (
                "PREDICTION_MAX_WAIT_MS",
                "-1",
                "PREDICTION_MAX_WAIT_MS has value -1.0; expected a number >= 0.",
            ),
            (
                "PREDICTION_REQUEST_TIMEOUT_MS",
                "0",
                "PREDICTION_REQUEST_TIMEOUT_MS has value 0.0; expected a number > 0.",
            ),
            (
                "PREDICTION_MAX_BATCH_ROWS",
                "0",
                "PREDICTION_MAX_BATCH_ROWS has value 0; expected a positive integer.",
            ),
            (
                "PREDICTION_ALLOW_VERSION_MISMATCH",
                "maybe",
                "PREDICTION_ALLOW_VERSION_MISMATCH has value 'maybe'; expected true or false.",
            ),
            (
                "PREDICTION_LOG_LEVEL",
                "loud",
                "PREDICTION_LOG_LEVEL has value 'LOUD'; "
                "expected DEBUG | INFO | WARNING | ERROR | CRITICAL.",
            ),
            (
                "PREDICTION_LOG_FORMAT",
                "Pretty",
                "PREDICTION_LOG_FORMAT has value 'pretty'; expected auto | json | console.",
            ),
            (
                "PREDICTION_REQUEST_TIMEOUT_MS",
                "inf",
                "PREDICTION_REQUEST_TIMEOUT_MS has value inf; expected a number > 0.",
            ),
            (
                "PREDICTION_TREE_ENGINE",
                "fast",
                "PREDICTION_TREE_ENGINE has value 'fast'; expected auto | off.",
            ),
            (
                "PREDICTION_THREADS_PER_WORKER",
                "0",
                "PREDICTION_THREADS_PER_WORKER has value 0; expected an integer from 1 to 1024.",
            ),
            (
                "PREDICTION_GZIP_MIN_BYTES",
                "-1",
                "PREDICTION_GZIP_MIN_BYTES has value -1; expected an integer >= 0.",
            ),
        ],
    )
    def test_bad_value_names_variable_and_value(
        self, variable: str, value: str, expected: str
    ) -> None:
        """A bad value raises one line naming the variable, the value and what is expected."""
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({variable: value})

        assert expected == str(caught.value)

    def test_trusted_types_are_comma_separated(self) -> None:
        """PREDICTION_TRUSTED_TYPES is split on commas, blanks dropped, and survives to_env."""
        settings = Settings.from_env(
            {
                "PREDICTION_TRUSTED_TYPES": " pkg.mod.Clip, pkg.Other ,",
                "PREDICTION_ALLOW_PICKLE": "0",
            }
        )

        assert (("pkg.mod.Clip", "pkg.Other"), False) == (
            settings.trusted_types,
            settings.allow_pickle,
        )
        assert settings == Settings.from_env(settings.to_env())

    def test_trusted_type_must_be_a_dotted_name(self) -> None:
        """A trusted type that is not a dotted Python name is refused, naming the variable."""
        with pytest.raises(SettingsError, match="PREDICTION_TRUSTED_TYPES has value 'Clip'"):
            Settings.from_env({"PREDICTION_TRUSTED_TYPES": "Clip"})

    def test_queue_must_hold_a_batch(self) -> None:
        """A queue smaller than one batch is refused."""
        with pytest.raises(SettingsError, match=r"PREDICTION_MAX_QUEUE_ROWS.*MAX_BATCH_ROWS"):
            Settings(max_batch_rows=64, max_queue_rows=32, max_request_rows=16)

    def test_queue_must_hold_the_largest_request(self) -> None:
        """A queue smaller than the per-request row limit is refused."""
        with pytest.raises(SettingsError, match="MAX_REQUEST_ROWS"):
            Settings(max_queue_rows=256, max_batch_rows=64, max_request_rows=512)

    def test_short_admin_token_refused_without_echoing_it(self) -> None:
        """A short admin token is refused and the message does not contain the token."""
        with pytest.raises(SettingsError) as caught:
            Settings(admin_token="secret")

        assert "secret" not in str(caught.value)

    def test_admin_token_not_in_repr(self) -> None:
        """The admin token never appears in the settings' repr (logs)."""
        assert "0123456789abcdef" not in repr(Settings(admin_token="0123456789abcdef"))
