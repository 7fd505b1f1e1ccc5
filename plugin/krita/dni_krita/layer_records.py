"""Re-editable DNI layers: what made each result layer, kept in the document itself.

A record names the source layer (by Krita's unique id), the family, the amount, the area
sent and the selection that limited the effect. Records live in one document annotation
(saved in the .kra file with the image), so a DNI layer stays re-editable after the file
is closed and opened again. Setting an annotation is not an undo step in Krita; a record
whose layer is gone is simply never found.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, NamedTuple

from dni_client.geometry import Rect, WorkArea

from . import core

ANNOTATION = "dni-layers"
DESCRIPTION = "DNI: how each DNI layer was made, so that it can be re-rendered"
KEEP = 100  # records per document


class LayerRecord(NamedTuple):
    source: str  # the filtered layer's unique id
    family: str
    strength: float | None
    weights: tuple[float, ...] | None
    mode: str
    area: WorkArea
    mask: bytes | None  # the selection over area.crop, when one limited the effect

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "family": self.family, "strength": self.strength,
                "weights": list(self.weights) if self.weights is not None else None,
                "mode": self.mode, "crop": list(self.area.crop), "core": list(self.area.core),
                "mask": None if self.mask is None
                else base64.b64encode(zlib.compress(self.mask)).decode("ascii")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerRecord:
        mask = data.get("mask")
        weights = data.get("weights")
        return cls(str(data["source"]), str(data["family"]), data.get("strength"),
                   tuple(float(w) for w in weights) if weights is not None else None,
                   str(data.get("mode", "network")),
                   WorkArea(Rect(*data["crop"]), Rect(*data["core"]), mask is not None),
                   zlib.decompress(base64.b64decode(mask)) if mask is not None else None)


def _key(node: Any) -> str:
    return str(node.uniqueId())


def _read_all(doc: Any) -> dict[str, Any]:
    if not hasattr(doc, "annotation"):
        return {}
    raw = bytes(doc.annotation(ANNOTATION) or b"")
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}  # not ours, or damaged: start afresh rather than fail a filter
    return data if isinstance(data, dict) else {}


def _write_all(doc: Any, records: dict[str, Any]) -> None:
    if hasattr(doc, "setAnnotation"):
        doc.setAnnotation(ANNOTATION, DESCRIPTION, json.dumps(records).encode("utf-8"))


def can_record(job: core.KritaJob) -> bool:
    """Results that can be made again the same way: a new layer over the source, at the
    image's size, with one strength or mix for every pixel."""
    return (job.options.target == core.TARGET_NEW_LAYER and job.scale == 1
            and job.spec.strength_map is None and isinstance(job.spec.amount.strength,
                                                             (float, int, type(None))))


def remember(job: core.KritaJob, layer: Any) -> None:
    if not can_record(job):
        return
    amount = job.spec.amount
    record = LayerRecord(_key(job.node), job.spec.family.name, amount.strength,
                         amount.weights, job.spec.mode, job.area, job.selection_mask)
    records = _read_all(job.doc)
    records[_key(layer)] = record.to_json()
    # Records of deleted layers stay (an undo may bring a layer back), the oldest go.
    _write_all(job.doc, dict(list(records.items())[-KEEP:]))


def record_of(doc: Any, layer: Any) -> LayerRecord | None:
    if layer is None:
        return None
    data = _read_all(doc).get(_key(layer))
    if data is None:
        return None
    try:
        return LayerRecord.from_json(data)
    except (KeyError, TypeError, ValueError, zlib.error):
        return None


def source_of(doc: Any, record: LayerRecord) -> Any:
    """The layer the record's result was made from, if it is still in the document."""
    for node in core.all_nodes(doc.rootNode()):
        if _key(node) == record.source:
            return node
    return None
