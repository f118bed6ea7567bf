"""The operator's trust boundary (pure): which container images a FraudModel or TrainingRun may run.

Whoever may create a FraudModel chooses the images of the predictor and the consumer, and whoever may
create a TrainingRun chooses the training image; those pods get the database Secret and the model
volumes. So the operator, not the object's author, decides which images run: an allow-list of image
references and repository prefixes set by the cluster administrator on the operator (the chart's
`allowedImages`, env FRAUDOPS_OPERATOR_ALLOWED_IMAGES). An object naming any other image is refused:
its children are not created, and it says why in a condition and an Event.

An entry matches an image when it is the same reference, or a prefix that ends at a boundary of the
reference (`/`, `:` or `@`): `ghcr.io/fraudops/` allows `ghcr.io/fraudops/predictor:0.2` but not
`ghcr.io/fraudops-mirror/predictor`. `*` allows every image (an explicit opt-out of the boundary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ALLOW_ALL = "*"
_BOUNDARIES = "/:@"


@dataclass(frozen=True)
class ImagePolicy:
    allowed: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ImagePolicy:
        """From the comma-separated setting; blanks are ignored."""
        return cls(tuple(entry.strip() for entry in text.split(",") if entry.strip()))

    def allows(self, image: str) -> bool:
        return any(_matches(entry, image) for entry in self.allowed)

    def refusal(self, images: Mapping[str, str]) -> str | None:
        """Why these images (role -> reference) may not run, or None when every one is allowed."""
        refused = [f"{role} image {image!r}" for role, image in images.items() if not self.allows(image)]
        if not refused:
            return None
        allowed = ", ".join(self.allowed) if self.allowed else "nothing (the allow-list is empty)"
        return f"{' and '.join(refused)} not allowed by the operator's image allow-list ({allowed})"


def _matches(entry: str, image: str) -> bool:
    if entry in (ALLOW_ALL, image):
        return True
    if not image.startswith(entry):
        return False
    return entry[-1] in _BOUNDARIES or image[len(entry)] in _BOUNDARIES
