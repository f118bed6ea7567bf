"""How hard a simulated history is: imitation, label noise, late labels and drift, as one named setting.

`easy` is the simulator as it was first written: every fraud is labelled, on time, and acts unlike its
victim. A model scored 0.95 AP on it, which says more about who wrote the patterns than about the
model. `realistic` (the default) and `hard` add what real histories have:

* fraud that imitates its victim: an episode's amounts are redrawn around the victim's own typical
  amount, and the share of such episodes grows over the months (fraudsters learn);
* label noise: some fraud episodes are never reported (their rows keep the label 0), and some legit
  rows are charged back although they were not fraud (`fraud_pattern` = `false_chargeback`);
* late labels: a share of the reports come several times later than the usual delay (up to 60 days);
* drift: a fraud pattern (`rogue_terminal`) appears only in the second half of the history,
  overall volume grows over the months, and merchants turn over: a share of them is replaced at some
  day of the history by a new merchant at the same place (new merchant and terminal ids, the same
  customers and category) — entity state built in training does not carry over to them.

`is_fraud` is what a bank would have as its label; `fraud_pattern` keeps the truth (the pattern of a
fraud, reported or not, or `false_chargeback`), so reports can tell noise from misses.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The label a legit row charged back as fraud carries in `fraud_pattern`.
FALSE_CHARGEBACK = "false_chargeback"


@dataclass(frozen=True)
class Difficulty:
    imitation_share: (
        float  # fraud episodes whose amounts imitate the victim (at mid-history; grows over time)
    )
    unreported_share: float  # fraud episodes never reported: label 0
    false_chargeback_rate: float  # legit rows labelled fraud, per legit row
    late_label_share: float  # labels that come 3–6x later than the usual delay
    emerging_pattern: str | None  # a pattern that only starts at mid-history
    volume_growth: float  # the last day has (1 + this) times the first day's legit volume
    merchant_turnover: float  # merchants replaced by a new one (new ids) at a random day of the history


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0),
    "realistic": Difficulty(0.4, 0.06, 0.0003, 0.15, "rogue_terminal", 0.25, 0.15),
    "hard": Difficulty(0.7, 0.15, 0.0008, 0.3, "rogue_terminal", 0.5, 0.3),
}
#: Patterns that exist only above the `easy` setting (easy keeps the original sixteen, bytes unchanged).
HARDER_PATTERNS = ("rogue_terminal",)
