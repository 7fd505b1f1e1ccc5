"""The bundled model families (one folder each, installed as the package `dni_families`
so that a wheel carries them), the recipes that train them and the report that measures
them (neither of which is installed)."""
