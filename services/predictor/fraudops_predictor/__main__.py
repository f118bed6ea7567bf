"""`python -m fraudops_predictor`: the InferenceService container's entry point."""

from fraudops.lean import without_training_libraries

without_training_libraries()

from fraudops_predictor.server import main  # noqa: E402 - after the import guard above

main()
