"""Fake gi.repository: Gimp, Gegl, GLib, GObject, GimpUi, Gtk."""
