# One image for every part of the platform: `fraudops <verb>` (gateway, stream consumer, training
# job, operator) and `python -m fraudops_predictor` (the KServe predictor). Built by skaffold; this
# development machine has no Docker engine, so CI builds it on a cluster-capable runner.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NUMBA_CACHE_DIR=/tmp/numba
WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY services services
COPY training-job training-job
COPY operator operator
COPY loadtest loadtest
RUN pip install --no-deps . && useradd --uid 10001 --no-create-home fraudops
USER 10001
ENTRYPOINT ["fraudops"]
