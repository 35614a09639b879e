"""In a real browser, without the stack: the page's own HTML and CSS at sizes that once broke
the layout (many classes with long names)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.fakes import version
from tests.ui.test_browser import browser
from ui import evaluation
from ui.app import CSS
from ui.schemas import ModelVersion

__all__ = ["browser"]  # the fixture shared with the first browser module
# The Models tab gives the confusion matrix half of a 1400-pixel page.
BOX_PX = 600


@pytest.fixture
def bare(browser: Browser) -> Iterator[Page]:
    """A blank page of the size the UI is tested at."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def thirty_classes() -> ModelVersion:
    names = [f"class_with_a_rather_long_name_{i:02d}" for i in range(30)]
    matrix = [[3 if i == j else 0 for j in range(30)] for i in range(30)]
    body = version(1, evaluation={"confusion_matrix": matrix, "curves": []})
    body["signature"]["classes"] = names
    return ModelVersion.model_validate(body)


def test_a_confusion_matrix_of_thirty_classes_scrolls_within_its_box(bare: Page) -> None:
    # The box clips as the page did: the table ran 9000 pixels wide, so every column after
    # the first was cut off with no way to reach it.
    shown = evaluation.confusion_html(thirty_classes())
    bare.set_content(
        f'<style>{CSS}</style><div id="box" style="width: {BOX_PX}px; overflow: clip">{shown}</div>'
    )
    box = bare.locator("#box").bounding_box()
    last = bare.locator("table.cm thead th").last
    expect(last).to_have_text("class_with_a_rather_long_name_29")
    last.scroll_into_view_if_needed()
    seen = last.bounding_box()
    assert box is not None and seen is not None
    assert box["x"] <= seen["x"] and seen["x"] + seen["width"] <= box["x"] + box["width"] + 1
    figure = bare.locator("figure.confusion").bounding_box()
    assert figure is not None and figure["width"] <= BOX_PX
