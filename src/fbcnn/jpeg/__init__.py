"""What JPEG is and does: tables and QF rules, encoders, degradations, recompression
analysis, JPEG consistency, the near-lossless share, traces of JPEG in pixels."""
