"""Test sequences: the CTC class lists in cfg/ctc/, finding their files on disk, and user-made classes.

A class list names each sequence with its size, frame rate and bit depth. Distributions name the files
differently (`BasketballPass_416x240_50.yuv`, `D-BQSquare_416x240_60p_yuv420_8b.yuv`,
`CatRobot_3840x2160_60fps_10bit_420.yuv`), so a file matches a sequence when the first token of its
name (after an optional class tag such as `D-`) is the sequence's name or an alias, and no size, frame
rate or bit-depth token in the name contradicts the list. A name without a size token must at least
hold a whole number of frames of the listed size.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vcodec.eval.errors import EvalError, SequencesNotFoundError
from vcodec.io import frame_bytes, infer_from_name, open_video
from vcodec.types import Frame, VcodecError

CTC_DIR = Path(__file__).resolve().parent.parent.parent / "cfg" / "ctc"
VIDEO_SUFFIXES: tuple[str, ...] = (".yuv", ".y4m")
_CLASS_TAG = re.compile(r"^(?:class)?[a-f][12]?[-_]", re.IGNORECASE)


@dataclass(frozen=True)
class SequenceSpec:
    """One entry of a class list: what the source file must be."""

    name: str
    seq_class: str
    width: int
    height: int
    fps: Fraction
    bitdepth: int
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sequence:
    """A test sequence found on disk; jobs carry it to the workers, which read the frames themselves."""

    name: str
    seq_class: str
    path: str
    width: int
    height: int
    bitdepth: int
    fps: Fraction
    frame_count: int

    def identity(self) -> dict[str, object]:
        """What a cached result depends on: the picture content is identified by name, format and file size."""
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "bitdepth": self.bitdepth,
            "file_bytes": Path(self.path).stat().st_size,
        }

    def read_frames(self, first: int, count: int) -> list[Frame]:
        if first + count > self.frame_count:
            raise EvalError(f"{self.path}: frames {first}..{first + count - 1} asked, it has {self.frame_count}")
        raw_format: dict[str, object] = {}
        if Path(self.path).suffix.lower() != ".y4m":
            raw_format = {"size": (self.width, self.height), "bitdepth": self.bitdepth, "fps": self.fps}
        with open_video(self.path, start=first, frames=count, **raw_format) as source:  # type: ignore[arg-type]
            frames = list(source.frames())
        if len(frames) != count:
            raise EvalError(f"{self.path}: read {len(frames)} frames, expected {count}")
        return frames


@dataclass(frozen=True)
class ClassList:
    """A CTC (or user-written) list of classes, from one TOML file of cfg/ctc/."""

    name: str
    description: str
    sequences: tuple[SequenceSpec, ...]

    @property
    def classes(self) -> tuple[str, ...]:
        seen: list[str] = []
        for spec in self.sequences:
            if spec.seq_class not in seen:
                seen.append(spec.seq_class)
        return tuple(seen)

    def of_class(self, seq_class: str) -> tuple[SequenceSpec, ...]:
        return tuple(s for s in self.sequences if s.seq_class.lower() == seq_class.lower())


_SPEC_KEYS = {"class", "name", "aliases", "width", "height", "fps", "bitdepth"}


def _spec_from_table(table: dict[str, object], where: str) -> SequenceSpec:
    unknown = set(table) - _SPEC_KEYS
    missing = {"class", "name", "width", "height", "fps", "bitdepth"} - set(table)
    if unknown or missing:
        raise EvalError(f"{where}: sequence entry {table.get('name', '?')!r} has unknown keys {sorted(unknown)} "
                        f"or lacks {sorted(missing)}")
    try:
        spec = SequenceSpec(
            name=str(table["name"]),
            seq_class=str(table["class"]),
            width=int(table["width"]),  # type: ignore[arg-type]
            height=int(table["height"]),  # type: ignore[arg-type]
            fps=Fraction(str(table["fps"])),
            bitdepth=int(table["bitdepth"]),  # type: ignore[arg-type]
            aliases=tuple(str(a) for a in table.get("aliases", ())),  # type: ignore[union-attr]
        )
    except (TypeError, ValueError) as err:
        raise EvalError(f"{where}: bad sequence entry {table.get('name', '?')!r}: {err}") from None
    if spec.bitdepth not in (8, 10) or spec.width % 2 or spec.height % 2 or spec.fps <= 0:
        raise EvalError(f"{where}: sequence {spec.name!r} must be 8 or 10 bit, even-sized, positive fps")
    return spec


def available_class_lists() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in CTC_DIR.glob("*.toml")))


def load_class_list(name_or_path: str) -> ClassList:
    """`hevc` or `jvet` (cfg/ctc/NAME.toml), or the path of a TOML file in the same layout."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CTC_DIR / f"{name_or_path.lower()}.toml"
    if not path.is_file():
        raise EvalError(f"unknown class list {name_or_path!r} (choose from {', '.join(available_class_lists())} "
                        "or give a .toml file)")
    with open(path, "rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as err:
            raise EvalError(f"{path}: {err}") from None
    entries = data.get("sequence", [])
    specs = tuple(_spec_from_table(entry, str(path)) for entry in entries)
    if not specs:
        raise EvalError(f"{path}: no [[sequence]] entries")
    return ClassList(str(data.get("name", path.stem)), str(data.get("description", "")), specs)


def _name_token(path: Path) -> str:
    return _CLASS_TAG.sub("", path.stem).split("_")[0].lower()


def match_score(spec: SequenceSpec, path: Path) -> int | None:
    """None if `path` cannot be `spec`'s file; otherwise how many name tokens confirm it (size, fps, depth)."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return None
    names = {spec.name.lower(), *(a.lower() for a in spec.aliases)}
    if _name_token(path) not in names:
        return None
    hints = infer_from_name(path)
    score = 0
    if hints.width is not None:
        if (hints.width, hints.height) != (spec.width, spec.height):
            return None
        score += 1
    elif path.suffix.lower() == ".yuv":
        one_frame = frame_bytes(spec.width, spec.height, spec.bitdepth)
        if path.stat().st_size == 0 or path.stat().st_size % one_frame:
            return None
    if hints.fps is not None:
        if hints.fps != spec.fps:
            return None
        score += 1
    if hints.bitdepth is not None:
        if hints.bitdepth != spec.bitdepth:
            return None
        score += 1
    return score


def _video_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _open_info(path: Path, spec: SequenceSpec | None) -> tuple[int, int, int, Fraction, int]:
    """Width, height, bit depth, fps and frame count of a file, as vcodec.io reads it."""
    if spec is not None and path.suffix.lower() != ".y4m":
        source = open_video(str(path), size=(spec.width, spec.height), bitdepth=spec.bitdepth, fps=spec.fps)
    else:
        source = open_video(str(path))
    with source:
        info = source.info
    if info.frame_count is None:
        raise EvalError(f"{path}: cannot tell how many frames it holds")
    return info.width, info.height, info.bitdepth, info.fps, info.frame_count


def find_sequences(class_list: ClassList, classes: list[str], root: str | Path, frames_needed: int) -> list[Sequence]:
    """Locate every sequence of `classes` under `root` (searched recursively).

    Everything missing, ambiguous or too short is gathered into one error before any job runs.
    """
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"sequence folder {root} does not exist")
    known = {c.lower(): c for c in class_list.classes}
    unknown = [c for c in classes if c.lower() not in known]
    if unknown:
        raise EvalError(f"unknown class(es) {', '.join(unknown)} in {class_list.name} "
                        f"(it has {', '.join(class_list.classes)})")
    files = _video_files(root)
    found: list[Sequence] = []
    problems: list[str] = []
    for seq_class in classes:
        for spec in class_list.of_class(known[seq_class.lower()]):
            scored = [(score, p) for p in files if (score := match_score(spec, p)) is not None]
            if not scored:
                problems.append(f"{spec.name} (class {spec.seq_class}, {spec.width}x{spec.height} "
                                f"{spec.fps}fps {spec.bitdepth}bit): not found")
                continue
            best = max(score for score, _ in scored)
            candidates = [p for score, p in scored if score == best]
            if len(candidates) > 1:
                problems.append(f"{spec.name}: several files match ({', '.join(p.name for p in candidates)})")
                continue
            path = candidates[0]
            try:
                width, height, bitdepth, _, count = _open_info(path, spec)
            except VcodecError as err:
                problems.append(f"{spec.name}: {err}")
                continue
            if count < frames_needed:
                problems.append(f"{spec.name}: {path.name} has {count} frames, {frames_needed} needed")
                continue
            found.append(Sequence(spec.name, spec.seq_class, str(path.resolve()), width, height, bitdepth,
                                  spec.fps, count))
    if problems:
        raise SequencesNotFoundError(
            f"{len(problems)} sequence(s) of {class_list.name} class(es) {','.join(classes)} missing under "
            f"{root}: " + "; ".join(problems)
        )
    return found


def class_from_directory(directory: str | Path, frames_needed: int, class_name: str | None = None) -> list[Sequence]:
    """A user-made class: every .yuv (size etc. read from its name) and .y4m file directly in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EvalError(f"class folder {directory} does not exist")
    name = class_name or directory.resolve().name
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not paths:
        raise SequencesNotFoundError(f"class folder {directory} holds no .yuv or .y4m files")
    found: list[Sequence] = []
    problems: list[str] = []
    for path in paths:
        try:
            width, height, bitdepth, fps, count = _open_info(path, None)
        except VcodecError as err:
            problems.append(f"{path.name}: {err}")
            continue
        if count < frames_needed:
            problems.append(f"{path.name}: has {count} frames, {frames_needed} needed")
            continue
        found.append(Sequence(path.stem, name, str(path.resolve()), width, height, bitdepth, fps, count))
    if problems:
        raise SequencesNotFoundError(f"{len(problems)} file(s) of class folder {directory} unusable: "
                                     + "; ".join(problems))
    return found


def write_sample_class(
    directory: str | Path,
    photos: list[str],
    width: int,
    height: int,
    frames: int = 1,
    bitdepth: int = 8,
    fps: int = 30,
) -> list[Path]:
    """A user-made class of CTC-named raw clips cut from scikit-image photos (vcodec.samples).

    For trying an evaluation end to end without the CTC sequences, and for the tests.
    """
    from vcodec.io import frame_to_bytes
    from vcodec.samples import sample_frames

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for photo in photos:
        clip = sample_frames(width, height, frames, bitdepth, photo)
        path = directory / f"{photo}_{width}x{height}_{fps}_{bitdepth}bit_420.yuv"
        path.write_bytes(b"".join(frame_to_bytes(frame) for frame in clip))
        paths.append(path)
    return paths


def write_pan_zoom_clip(
    directory: str | Path,
    photo: str = "astronaut",
    width: int = 416,
    height: int = 240,
    frames: int = 8,
    bitdepth: int = 8,
    fps: int = 30,
) -> Path:
    """A CTC-named raw clip of a window panning and zooming slowly across a scikit-image photo
    (vcodec.samples.pan_zoom_frames): content that moves a little from frame to frame, as warm start
    needs to be measured on; a still crop would flatter it."""
    from vcodec.io import frame_to_bytes
    from vcodec.samples import pan_zoom_frames

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clip = pan_zoom_frames(width, height, frames, bitdepth, photo)
    path = directory / f"{photo}-panzoom_{width}x{height}_{fps}_{bitdepth}bit_420.yuv"
    path.write_bytes(b"".join(frame_to_bytes(frame) for frame in clip))
    return path
