"""Charts drawn as plain HTML, so every label is text the person can read in full."""

from __future__ import annotations

import html

from ui.schemas import ModelVersion

AXIS_TITLE = "Importance (% of the total)"


def importance_html(version: ModelVersion | None) -> str:
    """Horizontal bars of feature importance, largest first, with full names and an axis title.

    Vertical bars cut long names ("ss_g" for body_mass_g) and hid them behind a hover; a
    row per feature has room for the whole name and the value beside its bar.
    """
    ranked = sorted(version.feature_importance if version else [], key=lambda f: -f.importance)
    if not ranked:
        return (
            '<div class="importance" data-bars="0"><p class="importance-title">Feature importance'
            "</p><p>Choose a model version to see which features it relies on.</p></div>"
        )
    largest = max(f.importance for f in ranked) or 1.0
    rows = "".join(
        f'<div class="importance-row" data-feature="{html.escape(f.feature)}">'
        f'<span class="importance-name">{html.escape(f.feature)}</span>'
        f'<span class="importance-track"><span class="importance-bar" '
        f'style="width: {100 * max(f.importance, 0) / largest:.1f}%"></span></span>'
        f'<span class="importance-value">{f.importance:.1f}</span></div>'
        for f in ranked
    )
    return (
        f'<div class="importance" data-bars="{len(ranked)}">'
        '<p class="importance-title">Feature importance</p>'
        f'<div class="importance-axis-y">Feature</div>{rows}'
        f'<div class="importance-axis-x">{AXIS_TITLE}</div></div>'
    )
