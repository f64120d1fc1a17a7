"""Real test pictures: YUV420 frames cut from scikit-image's bundled photos (nothing is downloaded)."""

from __future__ import annotations

import av
import numpy as np
import skimage.data
from skimage.transform import resize

from vcodec.types import Frame, VcodecError

PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def _rgb_photo(name: str) -> np.ndarray:
    if name not in PHOTOS:
        raise VcodecError(f"unknown sample photo {name!r} (choose from {', '.join(PHOTOS)})")
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def rgb_to_frame(rgb: np.ndarray, bitdepth: int) -> Frame:
    """Convert with libswscale's defaults (BT.601, limited range), as the HM sample clips were made."""
    fmt = "yuv420p" if bitdepth == 8 else "yuv420p10le"
    planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt).to_ndarray()
    h, w = rgb.shape[:2]
    flat = planes.reshape(-1)
    y = flat[: h * w].reshape(h, w)
    u = flat[h * w : h * w + h * w // 4].reshape(h // 2, w // 2)
    v = flat[h * w + h * w // 4 :].reshape(h // 2, w // 2)
    return Frame(y.astype(np.uint16), u.astype(np.uint16), v.astype(np.uint16), bitdepth)


def sample_frames(
    width: int = 416, height: int = 240, frames: int = 3, bitdepth: int = 8, photo: str = "astronaut"
) -> list[Frame]:
    """A short clip: the photo scaled to cover width x height, then a crop panning 4 pixels per frame."""
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise VcodecError(f"sample size {width}x{height} must be positive and even")
    if bitdepth not in (8, 10):
        raise VcodecError(f"unsupported bit depth {bitdepth} (supported: 8, 10)")
    rgb = _rgb_photo(photo)
    pan = 4 * max(frames - 1, 0)
    scale = max((height + pan) / rgb.shape[0], (width + pan) / rgb.shape[1])
    if scale > 1.0 or scale < 0.5:
        new_shape = (int(np.ceil(rgb.shape[0] * scale)), int(np.ceil(rgb.shape[1] * scale)))
        rgb = (resize(rgb, new_shape, anti_aliasing=scale < 1.0) * 255.0).round().astype(np.uint8)
    top = (rgb.shape[0] - height - pan) // 2
    left = (rgb.shape[1] - width - pan) // 2
    clip = []
    for i in range(frames):
        crop = rgb[top + 4 * i : top + 4 * i + height, left + 4 * i : left + 4 * i + width]
        clip.append(rgb_to_frame(np.ascontiguousarray(crop), bitdepth))
    return clip


def pan_zoom_frames(
    width: int = 416, height: int = 240, frames: int = 8, bitdepth: int = 8, photo: str = "astronaut",
    pan: tuple[float, float] = (3.0, 1.5), zoom: float = 1.2,
) -> list[Frame]:
    """A clip with motion that is not whole pixels: a width x height window that pans `pan` photo pixels a
    frame (x, y) and zooms in by `zoom` over the clip, resampled bicubically from the photo.

    For measuring what one frame's model is worth to the next (warm start): every frame differs from the
    one before by a sub-pixel shift and a slight scaling, as a slow camera move gives."""
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise VcodecError(f"sample size {width}x{height} must be positive and even")
    if bitdepth not in (8, 10):
        raise VcodecError(f"unsupported bit depth {bitdepth} (supported: 8, 10)")
    if frames < 1 or zoom < 1.0:
        raise VcodecError(f"a pan-zoom clip needs at least one frame and a zoom of 1 or more, got {frames}, {zoom}")
    from skimage.transform import AffineTransform, warp

    rgb = _rgb_photo(photo).astype(np.float64) / 255.0
    rows, cols = rgb.shape[:2]
    steps = max(frames - 1, 1)
    travel = (abs(pan[0]) * steps, abs(pan[1]) * steps)
    first_scale = 0.98 * min((cols - travel[0]) / width, (rows - travel[1]) / height)  # photo pixels per output pixel
    centre = (cols / 2 - pan[0] * steps / 2, rows / 2 - pan[1] * steps / 2)
    clip = []
    for i in range(frames):
        scale = first_scale / zoom ** (i / steps)
        x0 = centre[0] + pan[0] * i - width * scale / 2
        y0 = centre[1] + pan[1] * i - height * scale / 2
        # output pixel centre (c + 1/2) maps to photo position x0 + (c + 1/2) * scale, less the photo's 1/2
        transform = AffineTransform(scale=scale, translation=(x0 + 0.5 * scale - 0.5, y0 + 0.5 * scale - 0.5))
        window = warp(rgb, transform, output_shape=(height, width), order=3, mode="edge")
        samples = np.clip(np.round(window * 255.0), 0, 255).astype(np.uint8)
        clip.append(rgb_to_frame(np.ascontiguousarray(samples), bitdepth))
    return clip
