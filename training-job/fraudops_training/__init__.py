"""The training job: the container a TrainingRun runs, and the library behind `fraudops train`."""
