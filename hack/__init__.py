"""Build and run tooling that is not part of the platform (the e2e cluster lives in hack.cluster)."""
