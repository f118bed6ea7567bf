"""The three Grafana dashboards of the platform, as code: platform overview, model, and operator rollouts.

Every query uses only metrics the services export (the live-query test checks each panel's PromQL
against a real Prometheus scraping the real services). `make dashboards` writes their JSON.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from fraudops_monitoring.grafana import (
    RATE_WINDOW,
    bars,
    buckets_heatmap,
    instant_table,
    label_variable,
    new_dashboard,
    query,
    single_stat,
    thresholds,
    time_series,
)

W = RATE_WINDOW
# Decisions that acted (shadow decisions are recorded too, but decide nothing).
ACTING = 'shadow="false"'
MODEL = 'model_version=~"$model_version",variant=~"$variant"'
# Feature drift is measured where the artifact scores: by the gateway and consumer per variant, and for a
# variant scored remotely by its KServe predictor, per version and without a variant label.
FEATURE_PSI = (
    f"fraudops_feature_psi{{{MODEL}}} or "
    'fraudops_feature_psi{model_version=~"$model_version",source="predictor"}'
)


def quantiles(metric: str, by: str = "", selector: str = "", scale: str = "") -> list:
    """p50, p95 and p99 of a Prometheus histogram, one query each (`scale` e.g. "1000 * ")."""
    group = f"le{', ' + by if by else ''}"
    legend_by = f" {{{{{by}}}}}" if by else ""
    return [
        query(
            f"{scale}histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{W}])))",
            f"p{round(q * 100)}{legend_by}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def platform_overview() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "fraudops-overview",
            "fraudops / Platform overview",
            "Throughput, latency, errors, consumer lag and replicas of the gateway, the stream "
            "consumers and the predictors.",
            ["platform"],
        )
        .with_row(dashboard.Row("Now"))
        .with_panel(
            single_stat(
                "Decisions per second",
                "Acting decisions of the gateway and the stream together.",
                "reqps",
                f"sum(rate(fraudops_decisions_total{{{ACTING}}}[{W}]))",
            )
        )
        .with_panel(
            single_stat(
                "Fraud rate",
                "Share of acting decisions that were fraud.",
                "percentunit",
                f'sum(rate(fraudops_decisions_total{{{ACTING},outcome="fraud"}}[{W}])) / '
                f"sum(rate(fraudops_decisions_total{{{ACTING}}}[{W}]))",
                steps=thresholds((None, "green"), (0.02, "orange"), (0.05, "red")),
            )
        )
        .with_panel(
            single_stat(
                "Consumer lag",
                "Records behind the end of the transactions topic (KEDA scales on it).",
                "short",
                "sum(fraudops_consumer_lag_records)",
                steps=thresholds((None, "green"), (1000, "orange"), (10000, "red")),
            )
        )
        .with_panel(
            single_stat(
                "Targets up",
                "Scrape targets answering, of all fraudops targets.",
                "short",
                'sum(up{job=~".*(gateway|consumer|predictor|operator).*"})',
            )
        )
        .with_row(dashboard.Row("Throughput"))
        .with_panel(
            time_series(
                "Gateway requests",
                "HTTP requests per second by route and status.",
                "reqps",
                query(
                    f"sum by (route, status) (rate(fraudops_gateway_requests_total[{W}]))",
                    "{{route}} {{status}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Stream records",
                "Records consumed, replayed into state only, and dead-lettered.",
                "rps",
                query(f"sum(rate(fraudops_consumer_records_total[{W}]))", "consumed"),
                query(f"sum(rate(fraudops_consumer_replayed_total[{W}]))", "replayed"),
                query(f"sum(rate(fraudops_consumer_dead_lettered_total[{W}]))", "dead-lettered"),
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(
            time_series(
                "Gateway /predict latency",
                "Server-side time of a /predict request.",
                "s",
                *quantiles("fraudops_gateway_request_seconds", selector='route="/predict"'),
            )
        )
        .with_panel(
            time_series(
                "Event to stored decision",
                "From the record entering Kafka to its decision stored in PostgreSQL.",
                "s",
                *quantiles("fraudops_consumer_end_to_end_seconds"),
            )
        )
        .with_panel(
            time_series(
                "Predictor scoring time",
                "Time in the model per scoring call, by model.",
                "s",
                *quantiles("fraudops_predictor_scoring_seconds", by="model"),
            )
        )
        .with_panel(
            time_series(
                "Consumer stage time per batch",
                "p99 of each stage of a batch.",
                "s",
                query(
                    f"histogram_quantile(0.99, sum by (le, stage) "
                    f"(rate(fraudops_consumer_stage_seconds_bucket[{W}])))",
                    "{{stage}}",
                ),
            )
        )
        .with_row(dashboard.Row("Errors"))
        .with_panel(
            time_series(
                "Server errors and refusals",
                "Gateway 5xx, requests refused before scoring "
                "(by reason) and failed scoring calls (by variant).",
                "reqps",
                # `or on() vector(0)`: a healthy service has no error series at all; the panel shows 0.
                query(
                    f'sum(rate(fraudops_gateway_requests_total{{status=~"5.."}}[{W}])) or on() vector(0)',
                    "5xx",
                ),
                query(f"sum by (reason) (rate(fraudops_gateway_rejected_total[{W}]))", "refused: {{reason}}"),
                query(
                    f"sum by (variant) (rate(fraudops_scoring_errors_total[{W}])) or on() vector(0)",
                    "scoring failed: {{variant}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Dead-letter share",
                "Share of consumed records sent to the DLQ.",
                "percentunit",
                query(
                    f"sum(rate(fraudops_consumer_dead_lettered_total[{W}])) / "
                    f"sum(rate(fraudops_consumer_records_total[{W}]))",
                    "DLQ share",
                ),
            )
        )
        .with_row(dashboard.Row("Capacity"))
        .with_panel(
            time_series(
                "Consumer lag by partition",
                "Records behind each partition's end.",
                "short",
                query("sum by (partition) (fraudops_consumer_lag_records)", "partition {{partition}}"),
            )
        )
        .with_panel(
            time_series(
                "Replicas",
                "Scrape targets up per job: consumer, gateway and predictor pods.",
                "short",
                query('sum by (job) (up{job=~".*(gateway|consumer|predictor|operator).*"})', "{{job}}"),
                query("count(fraudops_consumer_assigned_partitions > 0)", "consumers owning partitions"),
            )
        )
    )


def model() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "fraudops-model",
            "fraudops / Model",
            "Score distribution, feature drift against training, fraud and alert rates, and precision "
            "and recall on labelled feedback, per model version and variant.",
            ["model"],
        )
        .with_variable(label_variable("model_version", "Model version", "fraudops_decisions_total"))
        .with_variable(label_variable("variant", "Variant", "fraudops_decisions_total"))
        .with_row(dashboard.Row("Variants side by side"))
        .with_panel(
            time_series(
                "Fraud rate by variant",
                "Share of decisions that were fraud (shadow variants included: they score without acting).",
                "percentunit",
                query(
                    f"sum by (variant, model_version) (rate(fraudops_decisions_total{{{MODEL},"
                    f'outcome="fraud"}}[{W}])) / sum by (variant, model_version) '
                    f"(rate(fraudops_decisions_total{{{MODEL}}}[{W}]))",
                    "{{variant}} {{model_version}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Decisions by variant",
                "Decisions per second each variant made.",
                "reqps",
                query(
                    f"sum by (variant, model_version) (rate(fraudops_decisions_total{{{MODEL}}}[{W}]))",
                    "{{variant}} {{model_version}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Median and p90 score by variant",
                "Fraud probability quantiles per variant.",
                "percentunit",
                *[
                    query(
                        f"histogram_quantile({q}, sum by (le, variant, model_version) "
                        f"(rate(fraudops_score_bucket{{{MODEL}}}[{W}])))",
                        f"p{round(q * 100)} {{{{variant}}}} {{{{model_version}}}}",
                    )
                    for q in (0.5, 0.9)
                ],
            )
        )
        .with_panel(
            time_series(
                "Alerts by variant",
                "Fraud alerts published per second.",
                "reqps",
                query(
                    f"sum by (variant, model_version) (rate(fraudops_alerts_total{{{MODEL}}}[{W}]))",
                    "{{variant}} {{model_version}}",
                ),
            )
        )
        .with_row(dashboard.Row("Score distribution"))
        .with_panel(
            buckets_heatmap(
                "Score distribution",
                "Decisions per score bucket over time.",
                f"sum by (le) (increase(fraudops_score_bucket{{{MODEL}}}[{W}]))",
            )
        )
        .with_panel(
            bars(
                "Scores per bucket",
                "Share of scores at or below each bound over the window.",
                "percentunit",
                f"sum by (le) (increase(fraudops_score_bucket{{{MODEL}}}[1h])) / ignoring(le) "
                f"group_left sum(increase(fraudops_score_count{{{MODEL}}}[1h]))",
                "≤ {{le}}",
            )
        )
        .with_row(dashboard.Row("Drift against the training distribution"))
        .with_panel(
            time_series(
                "Feature drift (PSI)",
                "Population stability index of each feature's live "
                "distribution against the reference histogram stored in the model artifact (measured by "
                "the gateway and consumer, or by the predictor of a remotely scored version). "
                "Above 0.25 the FraudopsFeatureDrift alert fires.",
                "none",
                query(f"max by (feature) ({FEATURE_PSI})", "{{feature}}"),
            ).thresholds(thresholds((None, "green"), (0.1, "orange"), (0.25, "red")))
        )
        .with_panel(
            bars(
                "Most drifted features now",
                "Latest PSI per feature.",
                "none",
                f"topk(10, max by (feature) ({FEATURE_PSI}))",
                "{{feature}}",
                steps=thresholds((None, "green"), (0.1, "orange"), (0.25, "red")),
            )
        )
        .with_row(dashboard.Row("Labelled feedback"))
        .with_panel(
            time_series(
                "Precision and recall on feedback",
                "Over the labels received in the last "
                "day (labels arrive days after the decision, so the window is over arrival).",
                "percentunit",
                query(
                    "sum by (model_version) (increase(fraudops_feedback_total{model_version=~"
                    '"$model_version",decision="fraud",label="fraud"}[1d])) / sum by '
                    "(model_version) (increase(fraudops_feedback_total{model_version=~"
                    '"$model_version",decision="fraud"}[1d]))',
                    "precision {{model_version}}",
                ),
                query(
                    "sum by (model_version) (increase(fraudops_feedback_total{model_version=~"
                    '"$model_version",decision="fraud",label="fraud"}[1d])) / sum by '
                    "(model_version) (increase(fraudops_feedback_total{model_version=~"
                    '"$model_version",label="fraud"}[1d]))',
                    "recall {{model_version}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Precision and recall over the matured cohort",
                "Decisions one label delay old, per version and variant (a canary beside the stable "
                "model): a decision without a label by now counts as legitimate. Recounted every "
                "FEEDBACK_QUALITY_INTERVAL_S.",
                "percentunit",
                query(
                    f"max by (model_version, variant) (fraudops_feedback_cohort_precision{{{MODEL}}})",
                    "precision {{variant}} {{model_version}}",
                ),
                query(
                    f"max by (model_version, variant) (fraudops_feedback_cohort_recall{{{MODEL}}})",
                    "recall {{variant}} {{model_version}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Alert to feedback",
                "Time from a decision to its confirmed label.",
                "s",
                *quantiles(
                    "fraudops_feedback_delay_seconds",
                    by="model_version",
                    selector='model_version=~"$model_version"',
                ),
            )
        )
    )


def rollouts() -> dashboard.Dashboard:
    fraudmodel = 'fraudmodel=~"$fraudmodel"'
    return (
        new_dashboard(
            "fraudops-operator",
            "fraudops / Operator rollouts",
            "Rollout phase and candidate weight over time, and every analysis verdict with the "
            "numbers it was judged on.",
            ["operator"],
        )
        .with_variable(label_variable("fraudmodel", "FraudModel", "fraudops_rollout_phase"))
        .with_row(dashboard.Row("Rollout"))
        .with_panel(
            time_series(
                "Phase",
                "The rollout phase of each FraudModel (1 while in that phase).",
                "none",
                query(
                    f"max by (fraudmodel, phase) (fraudops_rollout_phase{{{fraudmodel}}}) == 1",
                    "{{fraudmodel}} {{phase}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Candidate weight",
                "Share of traffic routed to the candidate, in percent.",
                "percent",
                query(
                    f"max by (fraudmodel) (fraudops_rollout_candidate_weight{{{fraudmodel}}})",
                    "{{fraudmodel}}",
                ),
            )
        )
        .with_row(dashboard.Row("Analysis"))
        .with_panel(
            time_series(
                "Verdicts",
                "Analysis verdicts by outcome and reason.",
                "short",
                query(
                    f"sum by (outcome, reason) (increase(fraudops_rollout_analysis_total"
                    f"{{{fraudmodel}}}[{W}]))",
                    "{{outcome}} {{reason}}",
                ),
            )
        )
        .with_panel(
            time_series(
                "Numbers judged",
                "What the last analyses measured, per variant.",
                "none",
                query(
                    f"max by (metric, variant) (fraudops_rollout_analysis_value{{{fraudmodel}}})",
                    "{{metric}} {{variant}}",
                ),
            )
        )
        .with_panel(
            instant_table(
                "Transitions in the window",
                "Phase changes per FraudModel.",
                f"sum by (namespace, fraudmodel, phase) (increase(fraudops_rollout_transitions_total"
                f"{{{fraudmodel}}}[1h]))",
            )
        )
    )


DASHBOARDS = {"fraudops-overview": platform_overview, "fraudops-model": model, "fraudops-operator": rollouts}
