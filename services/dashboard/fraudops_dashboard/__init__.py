"""The built-in live dashboard: throughput, latency, fraud rate, recent alerts, drift and rollout state."""
