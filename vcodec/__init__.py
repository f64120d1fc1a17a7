"""vcodec: an overfitted neural intra codec (Cool-chic family) for YUV420 video."""

__version__ = "0.1.0"
