#!/usr/bin/env python3
"""DNI filters for GIMP 3: one procedure per filter in dni_client.filters, e.g.
Filters ▸ Enhance ▸ DNI Denoise… and Filters ▸ Artistic ▸ DNI Stylize…

Deep Network Interpolation blends the weights of correlated networks (θ = Σ wᵢθᵢ) in the
DNI backend (`dni serve`); this plug-in sends the selected pixels there and writes the
answer back through GIMP's shadow buffer, inside one undo group. Scripts and batch mode
call the same procedures with arguments (see docs/gimp.md):

    family    string  the family to use (empty: the one named like the filter)
    strength  double  0 = the family's first member (axis low) ... 1 = the last (axis high)
    weights   string  one weight per member, >= 0, summing to 1 ("0.2,0.5,0.3"); wins
                      over strength
    preset    string  a preset name (the family's or the user's); wins over both
    pixel-blend bool  blend the members' outputs instead of their weights
    auto-map  bool    strength per region, read off the image's own noise (families
                      whose slider is a noise level); strength and weights are ignored
"""

from __future__ import annotations

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dni_gimp_paths  # noqa: E402  (sets up sys.path for dni_client and pyzmq)

dni_gimp_paths.setup()

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from dni_gimp_menus import (  # noqa: E402
    GET_FAMILIES,
    GET_FAMILIES_LABEL,
    GET_FAMILIES_MENU,
    label,
    procedures,
)
from gi.repository import Gimp, GLib, GObject  # noqa: E402

from dni_client.errors import FilterError  # noqa: E402
from dni_client.filters import Filter  # noqa: E402

try:
    import dni_gimp
except ImportError as exc:  # pyzmq (or dni_client) missing: register anyway, explain on use
    dni_gimp = None  # type: ignore[assignment]
    IMPORT_PROBLEM = f"{dni_gimp_paths.missing_zmq_message()} ({exc})"
else:
    IMPORT_PROBLEM = ""

RW = GObject.ParamFlags.READWRITE


def _failure(procedure: Gimp.Procedure, status: Gimp.PDBStatusType,
             message: str) -> Gimp.ValueArray:
    # GIMP shows the error's message to the user (a dialog, or the console in batch mode).
    return procedure.new_return_values(status, GLib.Error(message))


def add_arguments(procedure: Gimp.Procedure) -> None:
    procedure.add_string_argument(
        "family", "_Family", "DNI family to use (empty: the filter's default)", "", RW)
    procedure.add_double_argument(
        "strength", "_Strength", "0 = the family's first member, 1 = its last", 0.0, 1.0,
        0.5, RW)
    procedure.add_string_argument(
        "weights", "_Weights", "One weight per member, at least 0, summing to 1, "
        "e.g. '0.2,0.5,0.3' (empty: use strength)", "", RW)
    procedure.add_string_argument(
        "preset", "_Preset", "Preset name (empty: use weights or strength)", "", RW)
    procedure.add_boolean_argument(
        "pixel-blend", "Blend _pixels", "Blend the members' outputs instead of their "
        "weights (for comparison)", False, RW)
    procedure.add_boolean_argument(
        "auto-map", "_Auto map", "Strength per region, read off the image's own noise "
        "(families whose slider is a noise level)", False, RW)


def _connect_or_offer_install(session: object, settings: object, progress: object,
                              interactive: bool) -> None:
    """Connect; with nothing installed, an interactive run offers to install the backend
    (nothing is downloaded unless the artist says so) and then connects again."""
    try:
        dni_gimp.connect(session, progress)
    except FilterError:
        import dni_gimp_install

        here = os.path.dirname(os.path.abspath(__file__))
        if not interactive or not dni_gimp_install.offer_install(session, here,
                                                                  settings.config_dir):
            raise
        dni_gimp.connect(session, progress)


def _run(procedure: Gimp.Procedure, entry: Filter, interactive: bool, image: Gimp.Image,
         drawables: list, config: Gimp.ProcedureConfig) -> Gimp.ValueArray | None:
    """Run one filter; None when it finished, the CANCEL values when the dialog was
    cancelled. FilterError for anything to tell the user."""
    dni_gimp.check_target(image, drawables)
    settings = dni_gimp.load_settings()
    session = dni_gimp.new_session(settings)
    progress = dni_gimp.Progress(f"DNI {entry.title}: connecting...")
    try:
        _connect_or_offer_install(session, settings, progress, interactive)
        if interactive:
            import dni_gimp_dialog

            progress.end()
            progress = None
            estimate = functools.partial(dni_gimp.estimate_strength, image, drawables,
                                         session)  # the dialog's Auto button
            if not dni_gimp_dialog.run_dialog(config, entry, session.families, settings,
                                              estimate=estimate):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            progress = dni_gimp.Progress(f"DNI {entry.title}...")
        family, amount = dni_gimp.options_from_config(config.get_property, entry,
                                                      session.families, settings)
        dni_gimp.apply(image, drawables, session, family, amount,
                       mode="pixel" if config.get_property("pixel-blend") else "network",
                       progress=progress, auto_map=bool(config.get_property("auto-map")))
    finally:
        if progress is not None:
            progress.end()
        session.shutdown()
    return None


def run_filter(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
               drawables: list, config: Gimp.ProcedureConfig, data: object = None
               ) -> Gimp.ValueArray:
    if dni_gimp is None:
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, IMPORT_PROBLEM)
    entry = procedures()[procedure.get_name()]
    try:
        cancelled = _run(procedure, entry, run_mode == Gimp.RunMode.INTERACTIVE, image,
                         drawables, config)
    except FilterError as exc:
        dni_gimp.log(str(exc))
        if exc.code == "cancelled":
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        status = (Gimp.PDBStatusType.CALLING_ERROR if isinstance(exc, dni_gimp.CallingError)
                  else Gimp.PDBStatusType.EXECUTION_ERROR)
        return _failure(procedure, status, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug: say so instead of a bare traceback
        import traceback

        traceback.print_exc()
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                        f"DNI failed unexpectedly ({type(exc).__name__}: {exc}); the image "
                        "was not changed, or Edit ▸ Undo restores it. Details are on "
                        "GIMP's error console.")
    return cancelled or procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


def run_get_families(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
                     drawables: list, config: Gimp.ProcedureConfig, data: object = None
                     ) -> Gimp.ValueArray:
    if dni_gimp is None:
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, IMPORT_PROBLEM)
    import dni_gimp_get_families

    try:
        dni_gimp_get_families.open_with_new_session()
    except FilterError as exc:
        dni_gimp.log(str(exc))
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, str(exc))
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


def _get_families_procedure(plugin: Gimp.PlugIn) -> Gimp.Procedure:
    procedure = Gimp.ImageProcedure.new(plugin, GET_FAMILIES, Gimp.PDBProcType.PLUGIN,
                                        run_get_families)
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
    procedure.set_menu_label(GET_FAMILIES_LABEL)
    procedure.add_menu_path(GET_FAMILIES_MENU)
    procedure.set_documentation(
        "Download more DNI model families", "Lists the DNI catalogue (licence, size) and "
        "installs the families you pick, checksums verified, through the DNI backend.",
        GET_FAMILIES)
    procedure.set_attribution("DNI contributors", "DNI contributors", "2026")
    return procedure


class DniFilters(Gimp.PlugIn):
    def do_query_procedures(self) -> list:
        return [*procedures(), GET_FAMILIES]

    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        if name == GET_FAMILIES:
            return _get_families_procedure(self)
        entry = procedures()[name]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_filter)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(label(entry))
        procedure.add_menu_path(entry.gimp_menu)
        procedure.set_documentation(
            entry.blurb, entry.blurb + ". Deep Network Interpolation: the slider blends the "
            "weights of a family of networks. Needs the DNI backend (dni serve).", name)
        procedure.set_attribution("DNI contributors", "DNI contributors", "2026")
        add_arguments(procedure)
        return procedure


if __name__ == "__main__":
    Gimp.main(DniFilters.__gtype__, sys.argv)
