# The prediction service image (README 'Deploy').
#
#   docker build -t prediction-service:0.1.0 .        (or: podman build ...; make docker-build)
#   docker run --rm -p 5000:5000 prediction-service:0.1.0
#   docker run --rm -p 5000:5000 -v "$PWD/model_store:/models:ro" prediction-service:0.1.0
#
# Two stages: `build` (debian:13-slim) makes the virtualenv /venv and trains the demo models
# into /models; the runtime (distroless python3-debian13, nonroot) gets only those two
# directories. The builder must be Debian 13 because the venv links to the runtime's
# /usr/bin/python3 (3.13): a venv made with another Python minor does not run there.
# Kept free of heredocs and `ADD --checksum` so that podman 4.3 / buildah 1.28 builds it too.

FROM debian:13-slim AS build

# Versions come from Debian 13's archive at build time; pinning them would break every point
# release, and nothing from this stage but /venv and /models reaches the image. gcc and
# python3-dev build the tree engine's C walk (service/engines/_forest.c).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --no-install-recommends --yes python3-venv python3-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /venv

WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# The dependencies first, read from pyproject.toml, so that a change under service/ reuses
# this (slow: numpy, scipy, scikit-learn) layer.
COPY pyproject.toml README.md ./
RUN /venv/bin/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && /venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt

COPY service/ service/
# The C walk is optional for pip (a wheel without it still works, slower); the image must have
# it, so its import is checked here. `-P`: the installed package, not ./service (no build there).
RUN /venv/bin/pip install --no-cache-dir --no-deps . \
    && /venv/bin/python -P -c "import service.engines._forest" \
    && /venv/bin/pip check \
    && /venv/bin/python -P -m service demo --model-store /models \
    && PREDICTION_ALLOW_PICKLE=false /venv/bin/python -P -m service verify --model-store /models \
    && chmod -R a+rX /models

# Slim the venv: the image runs no pip, and nothing imports the packages' own test suites
# (about 70 MB, mostly scipy's). Byte code is compiled here once, because the runtime's
# site-packages is read-only to uid 65532 (and PYTHONDONTWRITEBYTECODE is set there).
RUN /venv/bin/python -m pip uninstall --yes pip \
    && find /venv/lib -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && /venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /venv/lib


FROM gcr.io/distroless/python3-debian13:nonroot

ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="prediction-service" \
      org.opencontainers.image.description="Async, micro-batching prediction server for scikit-learn models (Flask-tutorial, V1 and Open Inference V2 protocols)" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/python3-debian13:nonroot"

# Root-owned and world-readable: uid 65532 can read the venv and the store but not change them.
COPY --from=build /venv /venv
COPY --from=build /models /models

# Pickles run code when loaded, so the image refuses joblib versions; its demo store is skops
# (README, Threat model; `python -m service convert` rewrites an older store).
ENV PATH=/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREDICTION_HOST=0.0.0.0 \
    PREDICTION_PORT=5000 \
    PREDICTION_MODEL_STORE=/models \
    PREDICTION_DEFAULT_MODEL=iris \
    PREDICTION_ALLOW_PICKLE=false

# The distroless "nonroot" user, spelled out rather than left to the tag's default.
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 5000

# Exec form in Python: distroless has no shell and no curl. Exits 1 on any failure (urlopen
# raises on a refused connection, a timeout or a non-2xx status).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/venv/bin/python3", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('PREDICTION_PORT', '5000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["/venv/bin/python3", "-m", "service", "serve"]
