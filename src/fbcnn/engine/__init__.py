"""The restoring engine: one path from an image to its restored pixels (the network over
tiles: `restorer`; then JPEG consistency and the near-lossless share: `finish`), the
Python API over it, and the file pipeline."""
