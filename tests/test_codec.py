"""The intra codec end to end: bit-exact decoding, rate accounting, thread independence, fuzzing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcodec.bitstream.frame_header import parse_header
from vcodec.config import load_config
from vcodec.bitstream.frame_info import read_frame_info
from vcodec.decoder import decode_frame
from vcodec.encoder import EncodedFrame
from vcodec.encoder.encode import EncoderDecoderMismatch, check_decoder_matches, encode_frame_and_model
from vcodec.metrics import frame_psnr
from vcodec.model.frame_model import FrameModel
from vcodec.types import BitstreamError, Frame

# Few iterations at a high learning rate: enough for non-zero latents on tiny frames, fast in CI.
QUICK = dict(iterations=200, quantization_patience=1)


def frame_digest(frame: Frame) -> str:
    digest = hashlib.sha256()
    for plane in frame.planes():
        digest.update(np.ascontiguousarray(plane).tobytes())
    return digest.hexdigest()


def _model_output(model: FrameModel, bitdepth: int) -> Frame:
    """The encoder's own float model on its rounded latents and dequantised parameters, computed here
    from the model's modules (not by the encoder's check)."""
    with torch.no_grad():
        grids = [torch.round((latent * model.latent_gain).clamp(-128, 127)) for latent in model.latents]
        planes = model.synthesis(model.upsampling(grids))
        luma, chroma = planes[:, :1], F.avg_pool2d(planes[:, 1:], 2)
    peak = (1 << bitdepth) - 1
    y, u, v = ((p * peak).round().clamp(0, peak).numpy().astype(np.uint16) for p in (luma[0, 0], chroma[0, 0], chroma[0, 1]))
    return Frame(y, u, v, bitdepth)


@pytest.fixture(scope="module")
def coded_8bit(frame_8bit: Frame) -> tuple[EncodedFrame, Frame]:
    encoded, model = encode_frame_and_model(frame_8bit, 0.001, load_config("main", "fast", **QUICK))
    return encoded, _model_output(model, 8)


@pytest.fixture(scope="module")
def coded_10bit(frame_10bit: Frame) -> tuple[EncodedFrame, Frame]:
    # Trained on the memory-saving path (the banded, recomputed ARM rate): what 1080p and 4K frames take.
    cfg = load_config("light", "fast", memory_saving_pixels=0, **QUICK)
    encoded, model = encode_frame_and_model(frame_10bit, 0.001, cfg)
    return encoded, _model_output(model, 10)


@pytest.fixture(scope="module")
def encoded_8bit(coded_8bit: tuple[EncodedFrame, Frame]) -> EncodedFrame:
    return coded_8bit[0]


@pytest.fixture(params=["8bit", "10bit"])
def case(request: pytest.FixtureRequest) -> tuple[Frame, EncodedFrame, Frame]:
    encoded, model_output = request.getfixturevalue(f"coded_{request.param}")
    return request.getfixturevalue(f"frame_{request.param}"), encoded, model_output


def test_decoder_reproduces_the_encoders_model(case: tuple[Frame, EncodedFrame, Frame]) -> None:
    """The real decoder, from the bytes alone, against the encoder's float model: at most 1 LSB apart,
    and (almost) every sample exact."""
    source, encoded, model_output = case
    decoded = decode_frame(encoded.data)
    assert decoded.bitdepth == source.bitdepth
    exact = total = 0
    for a, b in zip(decoded.planes(), model_output.planes()):
        difference = np.abs(a.astype(np.int32) - b.astype(np.int32))
        assert difference.max() <= 1
        exact += int((difference == 0).sum())
        total += difference.size
    assert exact / total >= 0.999
    psnr = frame_psnr(source, decoded)
    assert abs(psnr.yuv - encoded.psnr.yuv) < 0.01
    assert psnr.y > 18.0  # the model really learnt the picture


def test_decoder_mismatch_is_an_internal_error(case: tuple[Frame, EncodedFrame, Frame]) -> None:
    """The encoder's own check refuses a decoded frame that strays from its model, and accepts 1 LSB."""
    _, encoded, model_output = case
    check_decoder_matches(model_output, model_output)
    nudged = model_output.y.copy()
    nudged[0, 0] = nudged[0, 0] + 1 if nudged[0, 0] == 0 else nudged[0, 0] - 1
    check_decoder_matches(model_output, Frame(nudged, model_output.u, model_output.v, model_output.bitdepth))
    nudged[0, 0] = 2 if model_output.y[0, 0] < 2 else model_output.y[0, 0] - 2
    with pytest.raises(EncoderDecoderMismatch):
        check_decoder_matches(model_output, Frame(nudged, model_output.u, model_output.v, model_output.bitdepth))
    nearest = decode_frame(encoded.data)
    u_nearest = np.ascontiguousarray(nearest.u[::-1])  # a different chroma plane: far more than 1 LSB off
    with pytest.raises(EncoderDecoderMismatch):
        check_decoder_matches(model_output, Frame(nearest.y, u_nearest, nearest.v, nearest.bitdepth))


def test_latents_are_really_coded(case: tuple[Frame, EncodedFrame, Frame]) -> None:
    _, encoded, _ = case
    assert encoded.latent_bits > 0
    assert read_frame_info(encoded.data).coded_grids > 0


def test_bitstream_size_matches_predicted_rate(case: tuple[Frame, EncodedFrame, Frame]) -> None:
    """The bit split the encoder reports (CSV, eval store) is the one the decoder reads from the bytes."""
    _, encoded, _ = case
    header, header_bytes = parse_header(encoded.data)
    assert encoded.header_bits == 8 * header_bytes
    assert encoded.parameter_bits == 8 * header.param_stream_bytes > 0
    assert encoded.latent_bits == 8 * header.latent_stream_bytes > 0
    assert header_bytes + header.param_stream_bytes + header.latent_stream_bytes == len(encoded.data)
    # The range coder ends on a 32-bit word: allow 1 % plus that one word.
    assert abs(encoded.latent_bits - encoded.predicted_latent_bits) <= 0.01 * encoded.predicted_latent_bits + 32


_DECODE_SCRIPT = """
import hashlib, sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
from vcodec.decoder import decode_frame
frame = decode_frame(open(sys.argv[1], 'rb').read())
print(hashlib.sha256(b''.join(np.ascontiguousarray(p).tobytes() for p in frame.planes())).hexdigest())
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_decoding_is_identical_with_1_and_2_threads(case: tuple[Frame, EncodedFrame, Frame], threads: int,
                                                   tmp_path: Path) -> None:
    """Each thread count, in a fresh process, against the one digest this process decoded at 1 thread."""
    _, encoded, _ = case
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = frame_digest(decode_frame(encoded.data))
    finally:
        torch.set_num_threads(previous)
    path = tmp_path / "frame.bin"
    path.write_bytes(encoded.data)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    result = subprocess.run([sys.executable, "-c", _DECODE_SCRIPT, str(path), str(threads)],
                            env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == reference


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 30), st.just(0)),
    st.tuples(st.just("byte"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.integers(0, 255)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buffer = bytearray(data)
    for kind, position, value in mutations:
        if not buffer:
            break
        index = position % len(buffer)
        if kind == "flip":
            buffer[index] ^= 1 << value
        elif kind == "truncate":
            del buffer[index:]
        elif kind == "byte":
            buffer[index] = value
        else:
            buffer.insert(index, value)
    return bytes(buffer)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_bitstreams_decode_or_fail_cleanly(encoded_8bit: EncodedFrame,
                                                   mutations: list[tuple[str, int, int]]) -> None:
    data = _mutate(encoded_8bit.data, mutations)
    try:
        frame = decode_frame(data)
    except BitstreamError as error:
        assert str(error)
        return
    assert frame.y.shape[0] * frame.y.shape[1] <= 8192 * 4352


def test_empty_and_garbage_bytes_fail_cleanly() -> None:
    for data in (b"", b"\x01", b"\x07garbage", bytes(64)):
        with pytest.raises(BitstreamError):
            decode_frame(data)


_BLOCKED_IMPORT_SCRIPT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(('vcodec.encoder', 'pytorch_msssim', 'vcodec.eval', 'vcodec.cli')):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
import vcodec.decoder
print('ok')
"""


def test_decoder_imports_without_training_code() -> None:
    result = subprocess.run([sys.executable, "-c", _BLOCKED_IMPORT_SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
