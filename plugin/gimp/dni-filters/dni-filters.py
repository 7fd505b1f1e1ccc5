#!/usr/bin/env python3
"""DNI filters for GIMP 3: Filters ▸ Enhance ▸ DNI Denoise… / DNI Super-Resolve… and
Filters ▸ Artistic ▸ DNI Stylize…

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
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dni_gimp_paths  # noqa: E402  (sets up sys.path for dni_client and pyzmq)

dni_gimp_paths.setup()

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from dni_gimp_menus import PROCEDURES, FilterSpec  # noqa: E402
from gi.repository import Gimp, GLib, GObject  # noqa: E402

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


def add_arguments(procedure: Gimp.Procedure, spec: FilterSpec) -> None:
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


def run_filter(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
               drawables: list, config: Gimp.ProcedureConfig, data: object = None
               ) -> Gimp.ValueArray:
    if dni_gimp is None:
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, IMPORT_PROBLEM)
    spec = PROCEDURES[procedure.get_name()]
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    settings = dni_gimp.Settings.load()
    client = None
    progress = None
    try:
        dni_gimp.check_target(image, drawables)
        progress = dni_gimp.Progress(f"DNI {spec.task}: connecting...")
        client = dni_gimp.connect(settings, progress)
        if interactive:
            import dni_gimp_dialog

            progress.end()
            progress = None
            answer = dni_gimp_dialog.run_dialog(procedure, config, spec, client, settings)
            if answer is None:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            progress = dni_gimp.Progress(f"DNI {spec.task}...")
        family, choice = dni_gimp.options_from_config(config.get_property, spec,
                                                      client.families(), settings)
        title = str(family.get("title") or family.get("name"))
        dni_gimp.apply(image, drawables, client, family, choice,
                       mode="pixel" if config.get_property("pixel-blend") else "network",
                       title=title, progress=progress)
    except dni_gimp.Cancelled as exc:
        dni_gimp.log(str(exc))
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    except dni_gimp.FilterError as exc:
        dni_gimp.log(str(exc))
        status = (Gimp.PDBStatusType.CALLING_ERROR if isinstance(exc, dni_gimp.CallingError)
                  else Gimp.PDBStatusType.EXECUTION_ERROR)
        return _failure(procedure, status, str(exc))
    except Exception as exc:  # a bug or a surprise: say so instead of a bare traceback
        import traceback

        traceback.print_exc()
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                        f"DNI failed unexpectedly ({type(exc).__name__}: {exc}); the image "
                        "was not changed, or Edit ▸ Undo restores it. Details are on "
                        "GIMP's error console.")
    finally:
        if progress is not None:
            progress.end()
        if client is not None:
            client.close()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


class DniFilters(Gimp.PlugIn):
    def do_query_procedures(self) -> list:
        return list(PROCEDURES)

    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        spec = PROCEDURES[name]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_filter)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(spec.label)
        procedure.add_menu_path(spec.menu)
        procedure.set_documentation(
            spec.blurb, spec.blurb + ". Deep Network Interpolation: the slider blends the "
            "weights of a family of networks. Needs the DNI backend (dni serve).", name)
        procedure.set_attribution("DNI contributors", "DNI contributors", "2026")
        add_arguments(procedure, spec)
        return procedure


if __name__ == "__main__":
    Gimp.main(DniFilters.__gtype__, sys.argv)
