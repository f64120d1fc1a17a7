"""The encoder: overfit a frame model, quantise it, and write the frame bitstream."""

from vcodec.encoder.encode import EncodedFrame, encode_frame, encode_frame_report
from vcodec.encoder.train import TrainProgress

__all__ = ["EncodedFrame", "TrainProgress", "encode_frame", "encode_frame_report"]
