"""The pieces of `python models/make_report.py`: one module per family's section.

Blending goes through the engine (`dni.Family`, see `engine.py`), so the report measures
the interpolation the editors run. Report-only extras: opencv-python-headless, bm3d,
scikit-image, matplotlib; the project's runtime needs none of them.
"""
