"""Precision and recall on labelled feedback, per model version and variant, over a cohort old enough for
its labels.

Fraud labels arrive days after the decision (chargebacks, analyst verdicts). Judged on the decisions of
the last hour, every flag still looks unconfirmed and every missed fraud looks caught; so the quality of
a model is read from a cohort of decisions made in `[now - label_delay - cohort, now - label_delay)`,
whose labels have had the label delay to arrive. Within that cohort a decision with no label by now is
taken as legitimate (the label-maturity rule of fraud monitoring: fraud gets reported within the delay):

    precision = flagged and labelled fraud / flagged
    recall    = flagged and labelled fraud / labelled fraud

The counts come from one query over `decisions` and `feedback_labels` (shadow decisions left out: they
act on nothing); the gateway publishes them as gauges every few minutes (`fraudops.monitoring`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

#: The acting decisions of one cohort per model version and variant: how many, flagged, labelled fraud,
#: both, and labelled at all.
COHORT_SQL = """
SELECT d.model_version,
       d.variant,
       count(*),
       count(*) FILTER (WHERE d.is_fraud),
       count(*) FILTER (WHERE f.is_fraud),
       count(*) FILTER (WHERE d.is_fraud AND f.is_fraud),
       count(f.transaction_id)
  FROM decisions d
  LEFT JOIN feedback_labels f ON f.transaction_id = d.transaction_id AND f.label_known_at < %(now)s
 WHERE NOT d.shadow AND d.decided_at >= %(start)s AND d.decided_at < %(end)s
 GROUP BY d.model_version, d.variant
"""


@dataclass(frozen=True)
class CohortQuality:
    """What the labels say about one model version's decisions, as one variant, in a matured cohort."""

    model_version: str
    variant: str  # stable | canary | challenger: during a canary the same cohort holds both sides
    decisions: int
    flagged: int
    fraud: int  # labelled fraud
    caught: int  # flagged and labelled fraud
    labelled: int

    @property
    def precision(self) -> float | None:
        """None without a flag to judge."""
        return self.caught / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        """None without a labelled fraud to find."""
        return self.caught / self.fraud if self.fraud else None

    @property
    def labelled_share(self) -> float:
        return self.labelled / self.decisions if self.decisions else 0.0


def matured_cohort(now: datetime, label_delay: timedelta, cohort: timedelta) -> tuple[datetime, datetime]:
    """The decision times whose labels have had `label_delay` to arrive: `cohort` long, ending then."""
    end = now - label_delay
    return end - cohort, end


def cohort_parameters(now: datetime, label_delay: timedelta, cohort: timedelta) -> dict[str, datetime]:
    start, end = matured_cohort(now, label_delay, cohort)
    return {"now": now, "start": start, "end": end}


def cohort_qualities(rows: Iterable[tuple[str, str, int, int, int, int, int]]) -> list[CohortQuality]:
    """The rows of COHORT_SQL."""
    return [CohortQuality(str(row[0]), str(row[1]), *(int(n) for n in row[2:])) for row in rows]
