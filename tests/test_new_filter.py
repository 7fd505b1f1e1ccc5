"""Adding a filter to both editors is one entry in dni_client.filters plus a family folder:
the backend accepts the family's task, Krita's Filter ▸ DNI gains the entry and GIMP
registers a procedure for it, and both offer the new family there."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY, correlated_states, write_family

from dni.engine import Engine
from dni_client import filters
from dni_client.families import FamilyInfo

ROOT = Path(__file__).resolve().parents[1]
_FAKES = str(ROOT / "tests" / "fakes_gimp")
SHARPEN = filters.Filter("sharpen", "Sharpen", "Crisper edges, from subtle to strong",
                         "<Image>/Filters/Enhance")


@pytest.fixture
def with_sharpen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[FamilyInfo]:
    """The one entry (before the catch-all) and a family folder of that task."""
    monkeypatch.setattr(filters, "FILTERS", filters.FILTERS[:-1] + (SHARPEN,
                                                                    filters.FILTERS[-1]))
    write_family(tmp_path, "crisp", correlated_states(TINY, 2), options=TINY, task="sharpen")
    engine = Engine("cpu", [tmp_path])
    return [FamilyInfo.from_dict(f) for f in engine.families()]


def test_the_backend_accepts_the_new_task_only_once_declared(tmp_path: Path) -> None:
    from dni.errors import FamilyError
    from dni.manifest import load_manifest

    folder = write_family(tmp_path, "crisp", correlated_states(TINY, 2), options=TINY,
                          task="sharpen")
    with pytest.raises(FamilyError, match="task 'sharpen' is not one of"):
        load_manifest(folder)


def test_krita_menu_gains_the_entry_and_its_dialog_offers_the_family(
        with_sharpen: list[FamilyInfo]) -> None:
    assert "crisp" in {f.name for f in with_sharpen}
    sys.path.insert(0, str(ROOT / "plugin" / "krita"))
    try:
        from dni_krita.plugin import menu_entries
    finally:
        sys.path.pop(0)
    entry = next(e for e in menu_entries() if e.task == "sharpen")
    assert (entry.action_id, entry.text) == ("dni_sharpen", "Sharpen…")
    # What the dialog opened from that entry lists (dialog.FilterDialog._fill_families).
    offered = filters.families_for(filters.filter_for(entry.task), with_sharpen)
    assert [f.name for f in offered] == ["crisp"]


def test_gimp_registers_a_procedure_that_runs_the_family(with_sharpen: list[FamilyInfo],
                                                         tmp_path: Path) -> None:
    sys.path.insert(0, _FAKES)
    try:
        from gimp_testkit import load_fakes, unload_fakes
    finally:
        sys.path.remove(_FAKES)
    fakes = load_fakes()
    try:
        plugin = fakes["entry"].DniFilters()
        assert "plug-in-dni-sharpen" in plugin.do_query_procedures()
        procedure = plugin.do_create_procedure("plug-in-dni-sharpen")
        assert procedure.meta["menu_paths"] == ["<Image>/Filters/Enhance"]
        assert procedure.meta["menu_label"] == "DNI Sharpen..."
        config = procedure.create_config()
        from dni_client.settings import BackendSettings

        def get(name: str) -> Any:
            return config.get_property(name)

        family, amount = fakes["dni_gimp"].options_from_config(
            get, filters.filter_for("sharpen"), with_sharpen, BackendSettings(str(tmp_path)))
        assert family.name == "crisp" and amount.strength == 0.5
    finally:
        unload_fakes()
