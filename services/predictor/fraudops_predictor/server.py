"""Start the KServe model server for one artifact (a local process, or the InferenceService container)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from kserve import ModelServer

from fraudops.config import get_settings
from fraudops.errors import ConfigurationError
from fraudops.logs import configure_logging
from fraudops.routing import TrainedFeatures
from fraudops.tracing import configure_tracing
from fraudops_predictor.dataplane import BinaryTensorDataPlane
from fraudops_predictor.model import FraudPredictor


def serve(
    model_uri: str,
    name: str = "card-fraud",
    port: int = 8080,
    workers: int = 1,
    declared: TrainedFeatures | None = None,
) -> None:
    """Load the artifact (refused if it was not trained as `declared` says), then serve V1 and V2 REST
    (and KServe's /metrics) until stopped."""
    configure_tracing("fraudops-predictor")
    model = FraudPredictor(name, model_uri, declared)
    model.load()
    # KServe logs three lines per request (access log, wall and CPU timings): at thousands of
    # requests a second that is real CPU. Its Prometheus histograms keep the timings; DEBUG brings
    # the lines back.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for chatty in ("kserve.trace", "uvicorn.access"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    server = ModelServer(http_port=port, workers=workers, enable_grpc=False, enable_latency_logging=False)
    server.dataplane = BinaryTensorDataPlane(model_registry=server.registered_models)  # see dataplane.py
    server.start([model])


def main() -> None:
    """Container entry point, with KServe's usual flags (`--model_name`, `--model_dir`, `--http_port`)."""
    parser = argparse.ArgumentParser(description="fraudops KServe predictor")
    parser.add_argument("--model_name", default=os.environ.get("MODEL_NAME", "card-fraud"))
    parser.add_argument("--model_dir", default=os.environ.get("STORAGE_URI") and "/mnt/models")
    parser.add_argument("--http_port", type=int, default=int(os.environ.get("HTTP_PORT", "8080")))
    parser.add_argument(
        "--trained_features",
        help="What the model was trained with, as the operator declares it (JSON of "
        "fraudops.routing.TrainedFeatures); the artifact must record the same.",
    )
    args, _ = parser.parse_known_args()
    try:
        declared = _declared(args.trained_features)
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        serve(args.model_dir or settings.model_path, args.model_name, args.http_port, declared=declared)
    except ConfigurationError as exc:  # a bad setting or artifact: one line, as the CLI says it
        sys.exit(f"error: {exc}")


def _declared(text: str | None) -> TrainedFeatures | None:
    if text is None:
        return None
    try:
        return TrainedFeatures.model_validate_json(text)
    except ValueError as exc:
        raise ConfigurationError(f"--trained_features {text!r}: {exc}") from exc


if __name__ == "__main__":
    main()
