"""Does a passage hold a gold evidence string? The one definition every eval metric and bench uses."""
from __future__ import annotations

from ingest.parse import normalize_text

OVERLAP_MIN = 0.5


def normalize_ws(text: str) -> str:
    return " ".join(text.split())


def evidence_forms(evidence: str) -> tuple[str, ...]:
    """The evidence as pypdf wrote it and as the pipeline's cleaner would write it, whitespace-collapsed."""
    forms = [normalize_ws(evidence)]
    cleaned = normalize_ws(normalize_text(evidence))  # chunks are text cleaned by the parser
    if cleaned not in forms:
        forms.append(cleaned)
    return tuple(f for f in forms if f)


def evidence_hit(chunk_text: str, evidence: str, overlap_min: float = OVERLAP_MIN) -> bool:
    """Does a retrieved passage hold the evidence string? (../shared/eval/README.md, "Matching evidence")

    True when, after whitespace normalisation (and the pipeline's normalize_text on the evidence when
    ingest.parse provides it), the passage contains the evidence; or the passage is shorter and the
    evidence contains it; or a chunk boundary cuts the evidence and the passage still holds at least
    ``overlap_min`` of its characters (the evidence's start ending the passage, or its end starting it).
    """
    chunk = normalize_ws(chunk_text)
    if not chunk:
        return False
    for ev in evidence_forms(evidence):
        if ev in chunk or (len(chunk) < len(ev) and chunk in ev):
            return True
    for ev in evidence_forms(evidence):
        if boundary_overlap(chunk, ev) >= overlap_min * len(ev):
            return True
    return False


def boundary_overlap(chunk: str, evidence: str) -> int:
    """Characters of the evidence held at a chunk edge: its start ending the chunk, or its end starting it."""
    best = 0
    for k in range(min(len(chunk), len(evidence)), 0, -1):
        if chunk.endswith(evidence[:k]) or chunk.startswith(evidence[-k:]):
            best = k
            break
    return best
