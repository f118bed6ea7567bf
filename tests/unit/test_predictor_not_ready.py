"""The predictor answers 503 (KServe's ModelNotReady), not 400 or 500, while no model is loaded."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import pytest
from kserve.errors import ModelNotReady, model_not_ready_handler

from fraudops_predictor.model import FraudPredictor


@pytest.mark.parametrize("payload", [{"instances": [[0.0, 1.0]]}, {"instances": [{"amount": 12.5}]}])
def test_a_request_before_the_model_is_loaded_is_answered_503(payload: dict) -> None:
    predictor = FraudPredictor("card-fraud", "/nowhere/yet")  # registered, not loaded

    with pytest.raises(ModelNotReady) as raised:
        asyncio.run(predictor.preprocess(payload))

    response = asyncio.run(model_not_ready_handler(None, raised.value))  # KServe's own handler for it
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "card-fraud" in response.body.decode()
