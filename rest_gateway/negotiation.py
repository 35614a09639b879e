"""Content negotiation: pick a response media type from an Accept header."""

from __future__ import annotations


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for item in accept.split(","):
        name, *params = (part.strip().lower() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((name, q))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> float:
    # The most specific matching range decides (RFC 9110, 12.5.1).
    best: tuple[int, float] | None = None
    for name, q in ranges:
        specificity = {media: 2, media.split("/")[0] + "/*": 1, "*/*": 0}.get(name)
        if specificity is not None and (best is None or specificity > best[0]):
            best = (specificity, q)
    return best[1] if best else 0.0


def negotiate(accept: str, default: str, offered: tuple[str, ...]) -> str | None:
    """Pick the output media type from an Accept header; None when nothing is acceptable."""
    if not accept.strip():
        return default
    ranges = _ranges(accept)
    candidates = [default, *(media for media in offered if media != default)]
    # Highest quality wins; on a tie the default, then the order offered.
    quality, _, media = max((_quality(m, ranges), -i, m) for i, m in enumerate(candidates))
    return media if quality > 0 else None
