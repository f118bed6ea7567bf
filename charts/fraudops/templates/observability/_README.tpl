{{- /*
templates/observability/ is the place for the observability work's objects, each behind its own value
under `observability:` (off by default) and checked by the same tests as everything else:
  - dashboards.yaml       Grafana dashboards as ConfigMaps (label grafana_dashboard: "1", which the
                          kube-prometheus-stack Grafana sidecar loads)
  - prometheusrules.yaml  PrometheusRules: alerts on error rate, p99 latency, consumer lag, DLQ growth
The OTLP exporter settings already reach the gateway (observability.otlpEndpoint -> OTEL_* variables,
see _helpers.tpl "fraudops.otelEnv").
*/ -}}
