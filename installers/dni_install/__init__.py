"""The DNI installer's parts (stdlib only, Python 3.9+, the same on Linux, macOS and
Windows): where things go (locations), which editors and Pythons there are (editors,
pythons), which torch fits the machine (torch_choice), the backend's virtualenv (backend),
what was written (record) and the whole run (plan). `installers/install.py` is the command.

Every decision reads the machine through one `Platform` object (platform.py), so tests
hand in a fake folder tree instead of patching globals.
"""
