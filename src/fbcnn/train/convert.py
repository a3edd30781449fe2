"""A grey network from a colour one, exactly: what the colour network does to a grey image.

A grey image fed to a colour network is the same plane three times, so the head's three
input filters act as their sum; the grey output is the BT.601 luma of the three output
planes, so the tail becomes the luma-weighted sum of its three filters (and biases). With
the global residual the input adds back unchanged, since the luma weights sum to 1. The
converted network's output on a grey image is therefore the luma of the colour network's
output on that image, and its QF decoupler reads the same QF: a grey model that starts
with everything the colour model learnt, its QF path included.
"""

from __future__ import annotations

import dataclasses

import torch

from ..networks.network import FBCNN

LUMA = (0.299, 0.587, 0.114)  # BT.601, as `fbcnn.jpeg.color.rgb_to_y`


def grey_from_colour(colour: FBCNN) -> FBCNN:
    """A 1-in, 1-out copy of a 3-in, 3-out network (head filters summed, tail to luma)."""
    config = colour.config
    if (config.in_channels, config.out_channels) != (3, 3):
        raise ValueError(f"expected a colour network (3 channels in and out), got "
                         f"{config.in_channels} in, {config.out_channels} out")
    grey = FBCNN(dataclasses.replace(config, in_channels=1, out_channels=1))
    state = {k: v.detach().clone() for k, v in colour.state_dict().items()}
    luma = torch.tensor(LUMA, dtype=state["m_tail.weight"].dtype)
    state["m_head.weight"] = state["m_head.weight"].sum(dim=1, keepdim=True)
    state["m_tail.weight"] = (state["m_tail.weight"] * luma.view(3, 1, 1, 1)).sum(0, keepdim=True)
    state["m_tail.bias"] = (state["m_tail.bias"] * luma).sum(0, keepdim=True)
    grey.load_state_dict(state)
    return grey.eval()
