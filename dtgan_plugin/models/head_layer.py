"""The person as a layer over a still background, for a warp that moves the hair with the head.

A spline that carries the hair with the head (:mod:`.head_outline`) also bends the background
between the moved hair and the crop's still border. With a *person matte* of the target (the
person 1, the background 0; ``dtgan_plugin.faces.segment``), the warp moves the person alone,
as a premultiplied layer over a still background:

    layer = (target − (1 − m)·still, m)          frame = warp(layer)_rgb + (1 − warp(m))·still

``m`` is the hardened matte (:func:`harden_matte`: exactly 0 and 1 outside a narrow soft band)
and ``still`` is the target outside the person and a fill of the background around it inside
(:func:`still_background`). Where the head moves away, the background behind it shows (no bent
copy of what was beside it, no ghost of the hair's soft edge); at rest the frame is the target
(``warp`` is then the identity: ``target − (1 − m)·still + (1 − m)·still``).

The fill meets the photo without a step at the person's resting outline (:func:`seamless`): a
backdrop often lightens or darkens right beside the hair, and a fill made from further out
met that ring with a step where the hair had been. It also carries the backdrop's grain
(:func:`grain`): a smooth patch showed where the hair had been on a photo's fine texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["harden_matte", "background_plate", "membrane", "seamless", "grain",
           "still_background", "person_layer", "composite"]

#: the soft segmentation's band that stays soft: below LOW it is background, above HIGH person
LOW, HIGH = 0.1, 0.5
#: the hardened matte is then grown by this fraction of the image side: the hair's faintest
#: fringe (a segmenter's 0.05-0.1) left behind drew a thin ghost of the resting hair's edge
#: when the head moved away; a little background moving with the hair does not show
_MATTE_GROW = 0.012
#: the person's core is grown by this fraction of the image side before the fill, so the
#: hair's fringe does not bleed into the background behind the head
_GROW = 0.02
#: the fill is made at most this wide (px) and upsampled
_FILL_SIDE = 128
#: Jacobi rounds of the membrane at each level of its pyramid: levels up to _FEW_ABOVE px
#: wide (cheap) get _ROUNDS_COARSE, finer ones start close and get _ROUNDS_FINE
_ROUNDS_COARSE, _ROUNDS_FINE, _FEW_ABOVE = 20, 8, 64
#: the grain is measured on the known backdrop within this fraction of the side of the fill
_GRAIN_BAND = 0.04


def _fill_factor(height: int, width: int) -> int:
    """The pooling factor that makes an image at most :data:`_FILL_SIDE` px wide."""
    return max(1, -(-max(height, width) // _FILL_SIDE))  # ceil


def _grow(mask: torch.Tensor, reach: int) -> torch.Tensor:
    """``mask`` ``(N, 1, H, W)`` grown by ``reach`` pixels (the maximum over a square: along
    the rows, then the columns, the same thing at 2·reach comparisons a pixel, not its square)."""
    if not reach:
        return mask
    rows = F.max_pool2d(mask, (1, 2 * reach + 1), stride=1, padding=(0, reach))
    return F.max_pool2d(rows, (2 * reach + 1, 1), stride=1, padding=(reach, 0))


def harden_matte(matte: torch.Tensor) -> torch.Tensor:
    """A soft person matte ``(N, 1, H, W)`` in [0, 1] → exactly 0 below :data:`LOW`, exactly 1
    above :data:`HIGH`, linear between, then grown by :data:`_MATTE_GROW` of the side."""
    hard = ((matte - LOW) / (HIGH - LOW)).clamp(0.0, 1.0)
    return _grow(hard, int(round(_MATTE_GROW * max(int(matte.shape[-1]),
                                                   int(matte.shape[-2])))))


def _known_pyramid(image: torch.Tensor, known: torch.Tensor, smallest: int
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(image · known, known)`` halved (2x2 means) level by level, finest first, down to the
    first level at most ``smallest`` px on its shorter side: each level's known colour sum and
    how much of it is known, so ``colour / weight`` is the known pixels' mean."""
    levels = [(image * known, known)]
    while min(levels[-1][0].shape[-2:]) > smallest:
        colour, weight = levels[-1]
        levels.append((F.avg_pool2d(colour, 2, ceil_mode=True),
                       F.avg_pool2d(weight, 2, ceil_mode=True)))
    return levels


def background_plate(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``image`` ``(N, C, H, W)`` with every pixel where ``known`` ``(N, 1, H, W)`` is 0 filled
    from the known pixels around it (push-pull: known colours averaged down a pyramid, then
    pulled back up where the finer level knows too little). Smooth, like a plain backdrop."""
    filled = None
    for colour, weight in reversed(_known_pyramid(image, known, 1)):
        mean = colour / weight.clamp_min(1e-6)
        if filled is None:
            # the coarsest level: whatever it knows, spread everywhere
            filled = mean if bool((weight > 0).all()) else \
                mean + (weight <= 0) * (colour.sum((-2, -1), keepdim=True)
                                        / weight.sum((-2, -1), keepdim=True).clamp_min(1e-6))
            continue
        up = F.interpolate(filled, size=colour.shape[-2:], mode="bilinear", align_corners=False)
        trust = (weight * 4.0).clamp(0.0, 1.0)  # a quarter known is enough to trust this level
        filled = trust * mean + (1.0 - trust) * up
    assert filled is not None
    return torch.where(known >= 1.0, image, filled)


def membrane(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``values`` ``(N, C, H, W)`` kept where ``known`` ``(N, 1, H, W)`` is 1 and spread as a
    membrane (Laplace's equation, the smoothest surface through them) everywhere else:
    solved coarse to fine, Jacobi rounds at each level started from the coarser solution."""
    levels = _known_pyramid(values, known, 4)
    kernel = values.new_tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])
    kernel = kernel.expand(values.shape[1], 1, 3, 3)
    solved: torch.Tensor | None = None
    for colour, weight in reversed(levels):
        mean = colour / weight.clamp_min(1e-6)
        fixed = (weight >= 0.999).to(values.dtype)
        if solved is None:
            overall = colour.sum((-2, -1), keepdim=True) / \
                weight.sum((-2, -1), keepdim=True).clamp_min(1e-6)
            solved = torch.where(weight > 0, mean, overall)
        else:
            solved = F.interpolate(solved, size=colour.shape[-2:], mode="bilinear",
                                   align_corners=False)
        solved = fixed * mean + (1.0 - fixed) * solved
        wide = max(colour.shape[-2:]) > _FEW_ABOVE
        for _ in range(_ROUNDS_FINE if wide else _ROUNDS_COARSE):
            around = F.conv2d(F.pad(solved, (1, 1, 1, 1), mode="replicate"), kernel,
                              groups=values.shape[1])
            solved = fixed * mean + (1.0 - fixed) * around
    assert solved is not None
    return solved


def seamless(fill: torch.Tensor, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``fill`` ``(N, C, H, W)`` shifted so that it meets ``image`` where ``known``
    ``(N, 1, H, W)`` is 1 without a step: plus the membrane of their difference there (Pérez et
    al.'s seamless cloning with the fill as its guide). Its own shading stays inside."""
    return fill + membrane(image - fill, known)


def _fine(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` less its 3x3 mean: the texture finer than a couple of pixels."""
    return x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _mad(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Per image and channel, the median of ``|values|`` ``(N, C, H, W)`` where ``where``
    ``(N, 1, H, W)`` holds (0 where it holds nowhere), ``(N, C, 1, 1)``."""
    n, c = values.shape[:2]
    out = values.new_zeros(n, c, 1, 1)
    for i in range(n):
        picked = values[i].abs()[:, where[i, 0]]
        if picked.shape[-1]:
            out[i, :, 0, 0] = picked.median(-1).values
    return out


def grain(image: torch.Tensor, known: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Grain for the fill of ``hole`` ``(N, 1, H, W)`` (where it is above 0), as strong as the
    fine texture of the ``known`` part of ``image`` ``(N, C, H, W)`` around it, ``(N, C, H, W)``.

    One fixed noise field (the same on every channel: a photo's grain is mostly brightness)
    with its finest texture taken as the image's is, scaled per channel to the median of the
    image's in a band around the hole (a median: the band's edges, a flag's stars, are not
    grain). Fixed, so a target always gets the same still background."""
    n, c, h, w = image.shape
    # the band is drawn at most _FILL_SIDE px wide: its exact edge does not matter
    factor = _fill_factor(h, w)
    coarse = (hole > 0).to(image.dtype)
    coarse = F.max_pool2d(coarse, factor, ceil_mode=True) if factor > 1 else coarse
    grown = _grow(coarse, max(1, int(round(_GRAIN_BAND * max(coarse.shape[-2:])))))
    grown = F.interpolate(grown, size=(h, w), mode="nearest") if factor > 1 else grown
    band = (grown > 0) & (known >= 1.0) & (hole <= 0)
    strength = _mad(_fine(image), band)
    noise = torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(0))
    noise = _fine(noise.to(device=image.device, dtype=image.dtype))
    # the noise's median deviation made the image's
    return noise * (strength / (float(noise.abs().median()) + 1e-12))


def still_background(image: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
    """What shows where the person moves away: ``image`` itself where the hardened matte
    ``hard`` ``(N, 1, H, W)`` is 0, and the fill of the background around the person (grown a
    little, so the hair's fringe does not bleed in) wherever it is above 0.

    The fill is smooth, so it is made at most :data:`_FILL_SIDE` px wide and upsampled: at a
    420 px detail size that took 0.13 s a target in full, 0.01 s so. Made from the background
    beyond the grown person, it is then made to meet the photo at the matte's edge
    (:func:`seamless`), where a backdrop's ring of light or shade beside the hair would
    otherwise stand as a step once the hair moves away."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    factor = _fill_factor(h, w)
    small = F.avg_pool2d(image, factor, ceil_mode=True) if factor > 1 else image
    person = F.max_pool2d(hard, factor, ceil_mode=True) if factor > 1 else hard
    person = _grow(person, max(1, int(round(_GROW * max(small.shape[-2:])))))
    plate = background_plate(small, (person <= 0).to(image.dtype))
    if factor > 1:
        plate = F.interpolate(plate, size=(h, w), mode="bilinear", align_corners=False)
    known = (hard <= 0).to(image.dtype)
    plate = seamless(plate, image, known) + grain(image, known, hard)
    return torch.where(hard > 0, plate, image)


def person_layer(image: torch.Tensor, hard: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
    """The person as a premultiplied layer ``(N, C + 1, H, W)``: ``image − (1 − hard)·still``
    and ``hard`` (0 colour wherever ``hard`` is 0, since ``still`` is ``image`` there)."""
    return torch.cat([image - (1.0 - hard) * still, hard], 1)


def composite(warped: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
    """The warped person layer ``(N, C + 1, H, W)`` (:func:`person_layer`, warped; overwritten)
    over the still background ``(N or 1, C, H, W)``: ``layer + (1 − matte)·still``.

    In place, in two passes over the frames (``layer − matte·still``, then ``+ still``): at the
    detail size the out-of-place form's four passes were most of the layer's cost."""
    matte = warped[:, -1:].clamp_(0.0, 1.0)
    return warped[:, :-1].addcmul_(matte, still, value=-1.0).add_(still)
