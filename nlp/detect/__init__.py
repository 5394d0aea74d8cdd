"""Complaint detection, explicit and unexpressed: pure functions over analyses.

See nlp/detect/README.md for the detection schema and the signals.
"""

from nlp.detect.calls import detect_call, turn_evidence
from nlp.detect.context import (
    CustomerBaseline,
    DetectionContext,
    DetectOptions,
    RecentContact,
    RunningStat,
)
from nlp.detect.detect import (
    EXPLICIT,
    UNEXPRESSED,
    DetectionOutcome,
    analyze_complaint,
    detect,
)
from nlp.detect.errors import DetectError, DetectInputError
from nlp.detect.merge import merge, merge_key, same_case
from nlp.detect.scores import normalise_score, score_band

__all__ = [
    "EXPLICIT",
    "UNEXPRESSED",
    "CustomerBaseline",
    "DetectError",
    "DetectInputError",
    "DetectOptions",
    "DetectionContext",
    "DetectionOutcome",
    "RecentContact",
    "RunningStat",
    "analyze_complaint",
    "detect",
    "detect_call",
    "merge",
    "merge_key",
    "normalise_score",
    "same_case",
    "score_band",
    "turn_evidence",
]
