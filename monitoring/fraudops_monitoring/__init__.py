"""Monitoring as code: the Grafana dashboards (generated with the Grafana Foundation SDK) and their output."""
