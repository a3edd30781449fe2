"""How much of its correction a near-lossless JPEG keeps.

At QF 95 and above a JPEG is within a grey level or two of what it was saved from, and that
may itself have been a JPEG of the same quality (a photo opened and saved again): then the
file is almost a fixed point of its own compression, and any change is a loss. Nothing in
the file tells the two cases apart, so near-lossless JPEGs keep only the part of the
correction that paid off on both. Measured with the shipped `color` (JPEG consistency on;
the gains over the JPEG for the correction scaled by a_Y on luma and a_C on chroma; BSDS500:
the first 30 test images, themselves QF-95 JPEGs; Kodak: the 24 PNGs; the probe is in
docs/training.md, "Near-lossless JPEGs"):

| QF | set | full correction | a_Y 0, a_C 0.25 | a_Y 0, a_C 0.5 |
| --- | --- | --- | --- | --- |
| 90 | BSDS500 / Kodak | +1.18 / +0.84 | | |
| 95 | BSDS500 | -0.55 (worst image -5.62) | +0.07 (worst -0.02) | +0.13 (worst -0.18) |
| 95 | Kodak | +0.23 (worst +0.07) | +0.03 (worst +0.00) | +0.06 (worst +0.01) |
| 100 | BSDS500 | +0.71 (worst -1.63) | +0.40 (worst +0.01) | +0.80 (worst +0.02) |
| 100 | Kodak | +0.07 (worst -0.55) | +0.17 (worst +0.02) | +0.29 (worst -0.02) |

So the luma correction fades out from QF 90 (all of it) to QF 95 (none), the chroma
correction from all of it to a quarter, and at QF 100 (every chroma step 1, only the chroma
subsampling lost) chroma keeps half. The file's quantisation tables give the quality; the
network's reading only where there are none (not a JPEG, or consistency off): the reading
misses by more than the fade is wide (on the probe's images some QF-95 files read 93-94,
where the fade would keep a third of their luma change; one Kodak photo at QF 100 reads 66).
The rule is for the model's own QF and for single JPEGs: with `--qf` the user chooses the
correction, and a file in which `fbcnn.jpeg.recompress` finds an earlier, stronger compression
(a re-saved copy of a heavily compressed image) keeps all of it.
"""

from __future__ import annotations

import numpy as np

from .consistency import _FROM_YCC32, _TO_YCC32, rounded_uint8

LUMA_FULL_UNTIL, LUMA_NONE_FROM = 90.0, 95.0  # QF: all of the luma correction .. none
CHROMA_NEAR_LOSSLESS = 0.25  # of the chroma correction kept from QF 95 on
CHROMA_SUBSAMPLING_ONLY = 0.5  # kept when the chroma steps are all 1 (QF 100)
STRIP = 512  # rows at a time (bounded memory on big images)


def quality(predicted_qf: float, table_qf: float | None) -> float:
    """The QF that decides the shares: the file's, else the network's reading. Also for
    tables that are not IJG's, although those overstate the quality (jpegli at quality 90
    writes tables of IJG QF 95): the lower of the two kept more of the change on average but
    lost up to 0.20 dB on single images of QF-95 sources (docs/real_world.md)."""
    return predicted_qf if table_qf is None else float(table_qf)


def strengths(quality: float, chroma_steps_one: bool = False) -> tuple[float, float]:
    """(luma, chroma): the shares of the network's correction kept for a JPEG of this
    quality (1..100); `chroma_steps_one`: the file's chroma table is all ones."""
    fade = float(np.clip((LUMA_NONE_FROM - quality) / (LUMA_NONE_FROM - LUMA_FULL_UNTIL),
                         0.0, 1.0))
    chroma = CHROMA_NEAR_LOSSLESS + (1.0 - CHROMA_NEAR_LOSSLESS) * fade
    if chroma_steps_one or quality >= 99.5:
        chroma = max(chroma, CHROMA_SUBSAMPLING_ONLY)
    return fade, chroma


def keep_share(restored: np.ndarray, decoded: np.ndarray, luma: float,
               chroma: float) -> np.ndarray:
    """`decoded` plus the shares `luma` / `chroma` of the change to `restored` (uint8, H x W
    x 1 or 3, same shape), the change split in the JPEG's YCbCr; uint8."""
    if restored.shape != decoded.shape:
        raise ValueError(f"shapes differ: {restored.shape} vs {decoded.shape}")
    if luma >= 1.0 and (chroma >= 1.0 or restored.shape[2] == 1):
        return restored
    out = np.empty_like(restored)
    for y0 in range(0, restored.shape[0], STRIP):
        r = restored[y0:y0 + STRIP].astype(np.float32)
        d = decoded[y0:y0 + STRIP].astype(np.float32)
        if r.shape[2] == 1:
            kept = d + luma * (r - d)
        else:
            change = (r - d) @ _TO_YCC32
            change *= np.array([luma, chroma, chroma], np.float32)
            kept = d + change @ _FROM_YCC32
        out[y0:y0 + STRIP] = rounded_uint8(kept)
    return out
