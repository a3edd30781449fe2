"""The restoring engine: one path from an image to its restored pixels (tiles, QF,
blending), the Python API over it, and the file pipeline."""
