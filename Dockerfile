# The platform's two images, from one build:
#   --target platform  (default) `fraudops <verb>`: gateway, stream consumer, training job, operator
#   --target predictor           `python -m fraudops_predictor`: the KServe InferenceService container
#   --target dev                 skaffold's dev profile only (sources writable, restarts on change)
# The predictor is the platform image with another entry point, so a node that runs both stores the
# ~1 GB of Python dependencies once (why not a slimmer predictor: README, "Images").
#
# BASE_IMAGE is any Debian-based Python 3.11 with `venv`: python:3.11-slim where a registry can be
# reached, or the Debian-made base of hack/images/base.sh (`make images` uses it on machines without one).
# pip trusts the CA bundle passed as the build secret `ca_bundle` when there is one (needed behind a
# TLS-inspecting proxy); a secret is mounted for one RUN only and never stored in a layer.
ARG BASE_IMAGE=python:3.11-slim

# checkov:skip=CKV_DOCKER_7: the base is the ARG above, whose default names a version tag
FROM ${BASE_IMAGE} AS dependencies
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The runtime lock only (no test or dev tools). This stage changes only with requirements.lock, so a code
# change reuses its ~1 GB layer. Then what no process runs leaves the venv: pip (nothing in the images
# installs packages) and the libraries' own test suites (pandas, numpy, scipy, pyarrow... ~150 MB).
RUN --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && python3 -m venv /opt/fraudops \
    && /opt/fraudops/bin/pip install --no-deps -r /tmp/requirements.lock \
    && /opt/fraudops/bin/pip uninstall --yes pip \
    && find /opt/fraudops/lib/python3*/site-packages -mindepth 2 -maxdepth 4 -type d -name tests -prune \
        -exec rm -rf {} +

FROM dependencies AS project
COPY pyproject.toml README.md /src/
COPY services /src/services
COPY training-job /src/training-job
COPY operator /src/operator
COPY loadtest /src/loadtest
# The project's own packages into a folder of their own (copied next to the dependencies below, a layer of
# a few MB), built without isolation: setuptools and wheel are in the venv, nothing is downloaded. pip
# comes back from the interpreter's bundled wheel for this step only.
RUN /opt/fraudops/bin/python -m ensurepip --default-pip >/dev/null \
    && /opt/fraudops/bin/pip install --no-deps --no-build-isolation --no-compile --target /opt/project /src \
    && /opt/fraudops/bin/python -m compileall -q /opt/project \
    && mv /opt/project/bin /opt/project-bin

FROM ${BASE_IMAGE} AS runtime
# Read-only root filesystem in the charts: everything a process writes goes to /tmp (an emptyDir there).
ENV PATH=/opt/fraudops/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    NUMBA_CACHE_DIR=/tmp/numba \
    MPLCONFIGDIR=/tmp/matplotlib \
    LOG_FORMAT=json
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin fraudops
COPY --from=dependencies /opt/fraudops /opt/fraudops
COPY --from=project /opt/project/ /opt/fraudops/lib/python3.11/site-packages/
COPY --from=project /opt/project-bin/ /opt/fraudops/bin/
WORKDIR /tmp
USER 10001:10001

FROM runtime AS predictor
EXPOSE 8080
# Kubernetes ignores HEALTHCHECK (the InferenceService's probes use the same path); `docker run` uses it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2)"]
ENTRYPOINT ["python3", "-m", "fraudops_predictor"]

# `skaffold dev -p dev` only: the platform image whose installed sources uid 10001 may overwrite (skaffold
# syncs edited .py files into running pods) and whose process restarts when one changes (watchfiles).
# Never deployed outside the dev profile; the charts keep the root filesystem read-only everywhere else.
FROM runtime AS dev
USER 0:0
RUN chown -R 10001:10001 /opt/fraudops/lib/python3.11/site-packages/fraudops* \
    && printf '#!/bin/sh\nexec watchfiles --filter python "fraudops $*" /opt/fraudops/lib/python3.11/site-packages\n' \
        >/usr/local/bin/fraudops-dev && chmod 0755 /usr/local/bin/fraudops-dev
USER 10001:10001
ENTRYPOINT ["fraudops-dev"]

# Last, so that a build without --target makes the platform image.
FROM runtime AS platform
# One image, several roles, each with its own port and probe (see the charts): gateway /health/live on
# 8000, consumer metrics on 9400, operator /healthz on 8080. No single HEALTHCHECK fits all of them.
HEALTHCHECK NONE
ENTRYPOINT ["fraudops"]
CMD ["--help"]
