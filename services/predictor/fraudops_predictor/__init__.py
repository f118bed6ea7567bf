"""The KServe predictor: a kserve.Model serving fraudops model artifacts over V1 and V2."""
