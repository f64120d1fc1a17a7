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
