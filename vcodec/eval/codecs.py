"""Every codec an evaluation runs, behind one small interface, each giving the same `PointResult`.

- `X265Codec`: the built-in HEVC anchor, x265 all-intra through PyAV, one frame per encode.
- `HmBitstreamCodec`: a folder of HM (or any HEVC) bitstreams, decoded with FFmpeg's HEVC decoder.
- `HmLogCodec`: a folder of HM encoder logs (per-frame bits and PSNR of the `POC` lines).
- `CsvCodec`: a plain table of per-frame results (sequence, qp, frame, bits, psnr_y, psnr_u, psnr_v).
- `VcodecCodec` (in `vcodec.eval.vcodec_codec`): the codec under test.

Rates are always the real size of the coded bytes; distortions are computed from the decoded pictures
against the source, except for HM logs and CSV tables, which carry the PSNRs their encoder measured.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import av

from vcodec.eval.errors import AnchorError
from vcodec.eval.hevc import (
    X265_HM_LIKE_PARAMS,
    decode_hevc,
    encode_x265,
    parse_hm_log,
    split_access_units,
)
from vcodec.eval.results import FrameResult, PointResult
from vcodec.eval.sequences import Sequence
from vcodec.io import infer_from_name
from vcodec.metrics import frame_mse, ms_ssim_y, mse_from_psnr, peak_value
from vcodec.types import Frame

DEFAULT_QPS: tuple[int, ...] = (22, 27, 32, 37)
X265_PRESETS: tuple[str, ...] = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
_QP_TOKEN = re.compile(r"(?:^|[_\-.])qp[_\-]?(\d{1,2})(?=$|[_\-.])", re.IGNORECASE)
_CLASS_TAG = re.compile(r"^(?:class)?[a-f][12]?[-_]", re.IGNORECASE)


class Codec(ABC):
    """One codec at its settings; `code` runs in a worker process and must not touch the results store."""

    name: str
    uses_gpu: bool = False

    @abstractmethod
    def version(self) -> str:
        """Changes whenever the same settings could give different results (a new library, a new format)."""

    @abstractmethod
    def settings(self) -> dict[str, object]:
        """Everything that changes the output, as plain JSON values; hashed into the results-store key."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the codec and its settings, printed in every report."""

    @abstractmethod
    def rate_points(self, sequence: Sequence) -> list[str]:
        """The rate points (QPs, lambdas) this codec has or will code for `sequence`."""

    def job_fingerprint(self, sequence: Sequence, rate_point: str) -> str:
        """For imported results: a digest of the files they come from, so a replaced file is re-read."""
        return ""

    def match_points(self, metric: str, values: dict[str, tuple[float, ...]]) -> None:
        """Code each sequence at these targets (sequence name -> the anchor's bpp or PSNR-YUV per rate
        point) instead of at the codec's own rate points: what `vcodec eval --match-anchor` asks of the
        codecs under test."""
        raise AnchorError(f"{self.name} cannot code at given rates (only vcodec has rate control)")

    @abstractmethod
    def code(self, sequence: Sequence, first_frame: int, frames: int, rate_point: str) -> PointResult:
        """Code (or import) `frames` frames of `sequence` from `first_frame` at `rate_point`."""

    def _result(self, sequence: Sequence, rate_point: str, frames: list[FrameResult]) -> PointResult:
        return PointResult(
            sequence=sequence.name,
            seq_class=sequence.seq_class,
            codec=self.name,
            rate_point=rate_point,
            width=sequence.width,
            height=sequence.height,
            bitdepth=sequence.bitdepth,
            fps=float(sequence.fps),
            frames=tuple(frames),
            codec_version=self.version(),
        )


def measured_frame(index: int, source: Frame, decoded: Frame, bits: int, seconds: float | None,
                   param_bits: int | None = None, arch: str | None = None) -> FrameResult:
    """A frame's result from its decoded picture: MSE per plane and MS-SSIM on Y against the source."""
    if (decoded.width, decoded.height, decoded.bitdepth) != (source.width, source.height, source.bitdepth):
        raise AnchorError(
            f"decoded frame {index} is {decoded.width}x{decoded.height} {decoded.bitdepth}-bit, the source "
            f"{source.width}x{source.height} {source.bitdepth}-bit"
        )
    return FrameResult(index, bits, frame_mse(source, decoded), ms_ssim_y(source, decoded), param_bits, seconds, arch)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pyav_version() -> str:
    libavcodec = ".".join(str(n) for n in av.library_versions["libavcodec"])
    return f"pyav-{av.__version__}-libavcodec-{libavcodec}"


@dataclass
class X265Codec(Codec):
    """HM's stand-in: x265 all-intra at fixed QPs, no psycho-visual tools (see docs/eval.md)."""

    preset: str = "slow"
    qps: tuple[int, ...] = DEFAULT_QPS
    params: str = X265_HM_LIKE_PARAMS
    name: str = ""

    def __post_init__(self) -> None:
        if self.preset not in X265_PRESETS:
            raise AnchorError(f"unknown x265 preset {self.preset!r} (choose from {', '.join(X265_PRESETS)})")
        if not self.qps or any(not 0 <= qp <= 51 for qp in self.qps):
            raise AnchorError(f"x265 QPs must be 0..51, got {list(self.qps)}")
        self.qps = tuple(sorted(set(self.qps)))
        self.name = self.name or f"x265-{self.preset}"

    def version(self) -> str:
        return _pyav_version()

    def settings(self) -> dict[str, object]:
        return {"codec": "x265", "preset": self.preset, "params": self.params}

    def describe(self) -> str:
        qps = "/".join(str(q) for q in self.qps)
        return (f"x265 through PyAV {av.__version__} (libx265), preset {self.preset}, all-intra, QP {qps}, "
                f"x265-params {self.params}, one frame per encode")

    def rate_points(self, sequence: Sequence) -> list[str]:
        return [str(qp) for qp in self.qps]

    def code(self, sequence: Sequence, first_frame: int, frames: int, rate_point: str) -> PointResult:
        results = []
        for offset, source in enumerate(sequence.read_frames(first_frame, frames)):
            start = time.perf_counter()
            data = encode_x265(source, int(rate_point), self.preset, self.params)
            seconds = time.perf_counter() - start
            decoded = decode_hevc([data])
            if len(decoded) != 1:
                raise AnchorError(f"x265 stream of frame {first_frame + offset} decoded to {len(decoded)} pictures")
            results.append(measured_frame(first_frame + offset, source, decoded[0], 8 * len(data), seconds))
        return self._result(sequence, rate_point, results)


def _split_qp(stem: str) -> tuple[str, int] | None:
    """`Name_416x240_30_QP22` -> (`Name_416x240_30`, 22); None when the name carries no QP token."""
    match = _QP_TOKEN.search(stem)
    if match is None:
        return None
    base = (stem[: match.start()] + stem[match.end():]).strip("_-.")
    return base, int(match.group(1))


def names_same_sequence(stem: str, sequence: Sequence) -> bool:
    """Whether a file stem (QP token removed) names `sequence`: the same stem as its source file or
    its name, or the same first name token with no contradicting size or bit-depth token."""
    source_stem = Path(sequence.path).stem
    lowered = stem.lower()
    if lowered in (source_stem.lower(), sequence.name.lower()):
        return True
    token = _CLASS_TAG.sub("", stem).split("_")[0].lower()
    source_token = _CLASS_TAG.sub("", source_stem).split("_")[0].lower()
    if token not in (sequence.name.lower(), source_token):
        return False
    hints = infer_from_name(stem + ".yuv")
    if hints.width is not None and (hints.width, hints.height) != (sequence.width, sequence.height):
        return False
    return hints.bitdepth is None or hints.bitdepth == sequence.bitdepth


def _files_by_qp(directory: Path, suffixes: tuple[str, ...], sequence: Sequence) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        split = _split_qp(path.stem)
        if split is None or not names_same_sequence(split[0], sequence):
            continue
        qp = split[1]
        if qp in found:
            raise AnchorError(f"{directory}: both {found[qp].name} and {path.name} hold {sequence.name} at QP {qp}")
        found[qp] = path
    return found


def _existing_folder(directory: str, what: str) -> str:
    """The anchor folder as an absolute path (so results stay valid from any working directory)."""
    if not Path(directory).is_dir():
        raise AnchorError(f"{what} folder {directory} does not exist")
    return str(Path(directory).resolve())


@dataclass
class HmBitstreamCodec(Codec):
    """HM bitstreams named with their QP (`..._QP22.bin`), first picture = source frame 0, decoded by FFmpeg."""

    directory: str
    name: str = "hm-bitstreams"

    def __post_init__(self) -> None:
        self.directory = _existing_folder(self.directory, "HM bitstream")

    def version(self) -> str:
        return _pyav_version()

    def settings(self) -> dict[str, object]:
        return {"codec": "hm-bitstreams", "directory": self.directory}

    def describe(self) -> str:
        return (f"HM bitstreams from {self.directory}, decoded with FFmpeg's HEVC decoder (PyAV {av.__version__}); "
                "per-frame bits = 8 x access-unit bytes")

    def _files(self, sequence: Sequence) -> dict[int, Path]:
        return _files_by_qp(Path(self.directory), (".bin", ".hevc", ".265", ".h265", ".str"), sequence)

    def rate_points(self, sequence: Sequence) -> list[str]:
        return [str(qp) for qp in sorted(self._files(sequence))]

    def job_fingerprint(self, sequence: Sequence, rate_point: str) -> str:
        return _file_digest(self._files(sequence)[int(rate_point)])

    def code(self, sequence: Sequence, first_frame: int, frames: int, rate_point: str) -> PointResult:
        path = self._files(sequence)[int(rate_point)]
        units = split_access_units(path.read_bytes())
        if len(units) < first_frame + frames:
            raise AnchorError(f"{path.name} holds {len(units)} pictures; frames {first_frame}.."
                              f"{first_frame + frames - 1} asked")
        wanted = units[: first_frame + frames]
        decoded = decode_hevc(wanted)
        if len(decoded) != len(wanted):
            raise AnchorError(f"{path.name}: {len(wanted)} access units decoded to {len(decoded)} pictures")
        sources = sequence.read_frames(first_frame, frames)
        results = []
        for offset, source in enumerate(sources):
            index = first_frame + offset
            results.append(measured_frame(index, source, decoded[index], 8 * len(units[index]), None))
        return self._result(sequence, rate_point, results)


@dataclass
class HmLogCodec(Codec):
    """HM encoder logs named with their QP, or saying it (`QP : 22`); bits and PSNR from the POC lines."""

    directory: str
    name: str = "hm-logs"

    def __post_init__(self) -> None:
        self.directory = _existing_folder(self.directory, "HM log")

    def version(self) -> str:
        return "hm-log-parser-1"

    def settings(self) -> dict[str, object]:
        return {"codec": "hm-logs", "directory": self.directory}

    def describe(self) -> str:
        return (f"HM encoder logs from {self.directory}: per-frame bits and PSNR (peak 255*2^(bitdepth-8)) "
                "of the POC lines")

    def _files(self, sequence: Sequence) -> dict[int, Path]:
        return _files_by_qp(Path(self.directory), (".log", ".txt"), sequence)

    def rate_points(self, sequence: Sequence) -> list[str]:
        return [str(qp) for qp in sorted(self._files(sequence))]

    def job_fingerprint(self, sequence: Sequence, rate_point: str) -> str:
        return _file_digest(self._files(sequence)[int(rate_point)])

    def code(self, sequence: Sequence, first_frame: int, frames: int, rate_point: str) -> PointResult:
        path = self._files(sequence)[int(rate_point)]
        log = parse_hm_log(path.read_text(errors="replace"), path.name)
        bitdepth = log.bitdepth or sequence.bitdepth
        if bitdepth != sequence.bitdepth:
            raise AnchorError(f"{path.name} was coded at {bitdepth} bit, {sequence.name} is {sequence.bitdepth}-bit")
        if log.width is not None and (log.width, log.height) != (sequence.width, sequence.height):
            raise AnchorError(f"{path.name} is {log.width}x{log.height}, {sequence.name} is "
                              f"{sequence.width}x{sequence.height}")
        by_index = {log.first_frame + f.poc: f for f in log.frames}
        peak = peak_value(bitdepth, hm_peak=True)
        results = []
        for index in range(first_frame, first_frame + frames):
            if index not in by_index:
                raise AnchorError(f"{path.name} has no POC line for frame {index} (it covers "
                                  f"{min(by_index)}..{max(by_index)})")
            line = by_index[index]
            mse = (mse_from_psnr(line.psnr_y, peak), mse_from_psnr(line.psnr_u, peak), mse_from_psnr(line.psnr_v, peak))
            results.append(FrameResult(index, line.bits, mse, None, None, line.seconds))
        return self._result(sequence, rate_point, results)


CSV_ANCHOR_COLUMNS: tuple[str, ...] = ("sequence", "qp", "frame", "bits", "psnr_y", "psnr_u", "psnr_v")


@dataclass
class CsvCodec(Codec):
    """Per-frame results of any encoder in a CSV table; PSNRs with HM's peak, 255*2^(bitdepth-8)."""

    path: str
    name: str = ""
    _rows: dict[tuple[str, int, int], dict[str, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        file = Path(self.path)
        if not file.is_file():
            raise AnchorError(f"anchor table {self.path} does not exist")
        self.path = str(file.resolve())
        self.name = self.name or f"csv-{file.stem}"
        with open(file, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_ANCHOR_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AnchorError(f"{self.path} lacks column(s) {', '.join(missing)} "
                                  f"(needs {', '.join(CSV_ANCHOR_COLUMNS)})")
            for line, row in enumerate(reader, start=2):
                try:
                    key = (row["sequence"].strip().lower(), int(row["qp"]), int(row["frame"]))
                except ValueError:
                    raise AnchorError(f"{self.path}:{line}: qp and frame must be integers") from None
                if key in self._rows:
                    raise AnchorError(f"{self.path}:{line}: {row['sequence']} qp {key[1]} frame {key[2]} repeated")
                self._rows[key] = row

    def version(self) -> str:
        return "csv-1"

    def settings(self) -> dict[str, object]:
        return {"codec": "csv", "path": self.path}

    def describe(self) -> str:
        return f"per-frame results from {self.path} (PSNR with peak 255*2^(bitdepth-8))"

    def _key_name(self, sequence: Sequence) -> str | None:
        names = {key[0] for key in self._rows}
        for candidate in (sequence.name.lower(), Path(sequence.path).stem.lower()):
            if candidate in names:
                return candidate
        return None

    def rate_points(self, sequence: Sequence) -> list[str]:
        name = self._key_name(sequence)
        return [str(qp) for qp in sorted({k[1] for k in self._rows if k[0] == name})]

    def job_fingerprint(self, sequence: Sequence, rate_point: str) -> str:
        return _file_digest(Path(self.path))

    def code(self, sequence: Sequence, first_frame: int, frames: int, rate_point: str) -> PointResult:
        name = self._key_name(sequence)
        peak = peak_value(sequence.bitdepth, hm_peak=True)
        results = []
        for index in range(first_frame, first_frame + frames):
            row = self._rows.get((name or "", int(rate_point), index))
            if row is None:
                raise AnchorError(f"{self.path} has no row for {sequence.name} qp {rate_point} frame {index}")
            try:
                mse = tuple(mse_from_psnr(float(row[c]), peak) for c in ("psnr_y", "psnr_u", "psnr_v"))
                bits = int(row["bits"])
                seconds = float(row["encode_seconds"]) if row.get("encode_seconds") else None
            except ValueError:
                raise AnchorError(f"{self.path}: non-numeric value for {sequence.name} qp {rate_point} "
                                  f"frame {index}") from None
            results.append(FrameResult(index, bits, mse, None, None, seconds))  # type: ignore[arg-type]
        return self._result(sequence, rate_point, results)
