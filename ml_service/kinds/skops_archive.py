"""Read a fitted pipeline's attributes from a skops archive with json and numpy alone.

A skops file is a zip: `schema.json` describes the object tree, node by node, and numeric
arrays sit beside it as `.npy` files. Serving a logistic regression needs only the fitted
arrays and a few settings, so the server reads them here instead of importing scikit-learn,
scipy and skops (about 100 MB resident) to rebuild the estimators.

The reader knows exactly the nodes our pipelines are written with (skops protocol 2). It
builds no estimator: an object node of a trusted type becomes a `Fitted` holding its
attributes, arrays are read with `allow_pickle=False`, and anything else (another protocol,
another node, an untrusted type) raises `Unreadable`, so the caller can hand the file to
skops itself, which loads it or refuses it in its own words.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

# Every type a fitted pipeline holds; skops refuses to load anything else.
TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
]
# The archive layouts this reader has been checked against (skops 0.10 to 0.16 write 2).
PROTOCOLS = frozenset({2})


class Unreadable(Exception):
    """The archive holds something this reader does not know; skops may still load it."""


class Fitted:
    """One fitted estimator as the archive holds it: its type and its attributes.

    Attributes read as on the estimator (`fitted.coef_`), plus the two views of fitted
    steps that scikit-learn computes rather than stores, `named_steps` (Pipeline) and
    `named_transformers_` (ColumnTransformer).
    """

    def __init__(self, type_name: str, attributes: dict[str, Any]) -> None:
        self.type_name = type_name
        self.attributes = attributes

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["attributes"][name]
        except KeyError:
            raise AttributeError(f"a fitted {self.type_name} has no {name!r}") from None

    @property
    def named_steps(self) -> dict[str, Any]:
        """A pipeline's steps by name."""
        return dict(self.attributes["steps"])

    @property
    def named_transformers_(self) -> dict[str, Any]:
        """A column transformer's fitted transformers by name."""
        return {name: step for name, step, _ in self.attributes["transformers_"]}


def read(path: str) -> Fitted:
    """Return the archive's root object, or raise Unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
            if not isinstance(schema, dict) or schema.get("protocol") not in PROTOCOLS:
                raise Unreadable("not a skops archive of a known protocol")
            root = _Reader(archive).node(schema)
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"not a readable skops archive: {exc}") from exc
    if not isinstance(root, Fitted):
        raise Unreadable("the archive does not hold an estimator")
    return root


class _Reader:
    """Turn schema nodes into Python values, reading arrays from the archive."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._archive = archive

    def node(self, node: Any) -> Any:
        if not isinstance(node, dict):
            raise Unreadable("a node that is not an object")
        loader = node.get("__loader__")
        content: Any = node.get("content")
        if loader == "JsonNode":
            return json.loads(content)
        if loader == "ListNode":
            return [self.node(item) for item in content]
        if loader == "TupleNode":
            return tuple(self.node(item) for item in content)
        if loader == "DictNode":
            return self._dict(node)
        if loader == "SliceNode":
            return slice(content["start"], content["stop"], content["step"])
        if loader == "NdArrayNode":
            return self._array(node)
        if loader == "DTypeNode":
            return self._array(content).dtype
        if loader == "TypeNode":
            return f"{node['__module__']}.{node['__class__']}"
        if loader == "ObjectNode":
            type_name = f"{node['__module__']}.{node['__class__']}"
            if type_name not in TRUSTED_TYPES:
                raise Unreadable(f"an untrusted type {type_name}")
            attributes = self.node(content)
            if not isinstance(attributes, dict):
                raise Unreadable(f"a {type_name} without attributes")
            return Fitted(type_name, attributes)
        raise Unreadable(f"a node of kind {loader!r}")

    def _dict(self, node: dict[str, Any]) -> dict[str, Any]:
        key_types = self.node(node["key_types"])
        if any(key_type != "builtins.str" for key_type in key_types):
            raise Unreadable("a dict whose keys are not text")
        return {key: self.node(value) for key, value in node["content"].items()}

    def _array(self, node: dict[str, Any]) -> Any:
        if node.get("__loader__") != "NdArrayNode":
            raise Unreadable("an array node of another kind")
        if node.get("type") == "numpy":
            with self._archive.open(node["file"]) as member:
                array = np.load(io.BytesIO(member.read()), allow_pickle=False)
            # A numpy scalar (say n_samples_seen_) is written as a 0-d array.
            return array if node["__class__"] == "ndarray" else array[()]
        if node.get("type") == "json":
            # Arrays of Python objects (category names, column names), item by item.
            values = [self.node(item) for item in node["content"]]
            array = np.empty(len(values), dtype=object)
            array[:] = values
            return array.reshape(self.node(node["shape"])) if "shape" in node else array
        raise Unreadable("an array stored neither as .npy nor as JSON")
