"""Training recipes for the bundled families (see models/recipes/README.md)."""
