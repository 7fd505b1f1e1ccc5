"""models/reporting (python models/make_report.py): the report blends through the engine
and gets what the plain state-dict interpolation gives; its training tables match REPORT.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from dni.blend import interpolate
from dni.checkpoints import build_model, read_state_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.reporting.engine import ReportFamily  # noqa: E402
from models.reporting.training import training_summary  # noqa: E402

MODELS = ROOT / "models"
# (family, weightings the report uses: members, pair blends, an N-way mix)
WEIGHTINGS = {
    "denoise": [[1, 0, 0], [0, 0, 1], [0.3, 0.7, 0], [0, 0.62, 0.38]],
    "super-resolve": [[1, 0], [0.5, 0.5], [0, 1]],
    "stylize": [[0.25, 0.75, 0], [0.3334, 0.3333, 0.3333], [0.5, 0, 0.5]],
    "stylize-stroke": [[0.75, 0.25]],
}


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_engine_blend_matches_state_dict_interpolation(name: str) -> None:
    """What make_report did before it used the engine: interpolate, build, run."""
    fam = ReportFamily(MODELS / name)
    states = [{k: v.float() for k, v in read_state_dict(m.file).items()}
              for m in fam.manifest.members]
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for weights in WEIGHTINGS[name]:
        reference = build_model(fam.manifest.architecture, fam.manifest.architecture_options,
                                interpolate(states, weights)).float()
        with torch.inference_mode():
            expected = reference(x).clamp(0, 1)
        assert torch.allclose(fam.run(x, weights=weights), expected, atol=1e-5), weights


def test_strength_is_the_engine_weighting() -> None:
    fam = ReportFamily(MODELS / "denoise")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    by_strength = fam.run(x, strength=0.5)
    by_weights = fam.run(x, weights=fam.engine.weights_for(strength=0.5))
    assert torch.equal(by_strength, by_weights)


@pytest.mark.parametrize("name", ["denoise", "super-resolve", "stylize", "stylize-stroke"])
def test_training_tables_are_the_committed_ones(name: str) -> None:
    assert training_summary(MODELS, name) in (MODELS / "REPORT.md").read_text(encoding="utf-8")


def test_a_partial_report_keeps_the_other_sections_by_their_marks() -> None:
    """`make_report.py --sections auto` measures one section again; the others, and
    their targets, are taken from the existing REPORT.md between their marks."""
    from models.make_report import _block, _marks

    text = "\n".join(["# report", *_marks("section", "denoise")[:1], "## denoise", "a", "",
                      _marks("section", "denoise")[1], _marks("section", "sr")[0],
                      "## sr", "b", _marks("section", "sr")[1], "## Targets",
                      _marks("targets", "sr")[0], "- sr: met", _marks("targets", "sr")[1]])
    assert _block(text, "section", "denoise") == ["## denoise", "a", ""]
    assert _block(text, "section", "sr") == ["## sr", "b"]
    assert _block(text, "targets", "sr") == ["- sr: met"]
    assert _block(text, "targets", "denoise") is None
    shipped = (ROOT / "models" / "REPORT.md").read_text(encoding="utf-8")
    for name in ("denoise", "auto", "dejpeg", "sr", "stylize"):
        assert _block(shipped, "section", name), name
