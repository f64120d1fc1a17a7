"""CTC class lists and finding their sequences under tolerant file names."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from vcodec.eval.errors import EvalError, SequencesNotFoundError
from vcodec.eval.sequences import (
    class_from_directory,
    find_sequences,
    load_class_list,
    match_score,
    write_sample_class,
)
from vcodec.io import frame_bytes

HEVC_CLASSES = {
    "A": ({"Traffic", "PeopleOnStreet", "Nebuta", "SteamLocomotive"}, (2560, 1600)),
    "B": ({"Kimono", "ParkScene", "Cactus", "BasketballDrive", "BQTerrace"}, (1920, 1080)),
    "C": ({"BasketballDrill", "BQMall", "PartyScene", "RaceHorsesC"}, (832, 480)),
    "D": ({"BasketballPass", "BQSquare", "BlowingBubbles", "RaceHorses"}, (416, 240)),
    "E": ({"FourPeople", "Johnny", "KristenAndSara"}, (1280, 720)),
}


@pytest.mark.parametrize(("seq_class", "expected"), HEVC_CLASSES.items())
def test_hevc_classes(seq_class: str, expected: tuple[set[str], tuple[int, int]]) -> None:
    names, size = expected
    specs = load_class_list("hevc").of_class(seq_class)
    assert {s.name for s in specs} == names
    assert {(s.width, s.height) for s in specs} == {size}


def test_hevc_class_f_and_bit_depths() -> None:
    hevc = {s.name: s for s in load_class_list("hevc").sequences}
    assert {n for n, s in hevc.items() if s.seq_class == "F"} == {"BasketballDrillText", "ChinaSpeed", "SlideEditing",
                                                                  "SlideShow"}
    assert (hevc["ChinaSpeed"].width, hevc["ChinaSpeed"].height) == (1024, 768)
    assert {n for n, s in hevc.items() if s.bitdepth == 10} == {"Nebuta", "SteamLocomotive"}
    assert (hevc["BasketballPass"].fps, hevc["Kimono"].fps, hevc["SlideShow"].fps) == (50, 24, 20)


def test_jvet_classes() -> None:
    jvet = load_class_list("jvet")
    assert jvet.classes == ("A1", "A2", "B", "C", "D", "E", "F")
    by_name = {s.name: s for s in jvet.sequences}
    assert {s.name for s in jvet.of_class("a1")} == {"Tango2", "FoodMarket4", "Campfire"}
    assert {s.name for s in jvet.of_class("A2")} == {"CatRobot", "DaylightRoad2", "ParkRunning3"}
    assert all((s.width, s.height, s.bitdepth) == (3840, 2160, 10) for s in jvet.of_class("A1") + jvet.of_class("A2"))
    assert {s.name for s in jvet.of_class("B")} == {"MarketPlace", "RitualDance", "Cactus", "BasketballDrive",
                                                    "BQTerrace"}
    assert (by_name["RitualDance"].bitdepth, by_name["Cactus"].bitdepth) == (10, 8)
    assert {s.name for s in jvet.of_class("F")} == {"BasketballDrillText", "ArenaOfValor", "SlideEditing",
                                                    "SlideShow"}
    assert (by_name["ArenaOfValor"].width, by_name["ParkRunning3"].fps) == (1920, Fraction(50))


def test_unknown_class_list_is_refused() -> None:
    with pytest.raises(EvalError, match="hevc, jvet"):
        load_class_list("mpeg")


@pytest.mark.parametrize(
    ("name", "sequence", "matches"),
    [
        ("CatRobot_3840x2160_60fps_10bit_420.yuv", "CatRobot", True),
        ("CatRobot1_3840x2160p_60_10_709_01.yuv", "CatRobot", True),
        ("CatRobot_3840x2160_60fps_8bit_420.yuv", "CatRobot", False),  # an 8-bit conversion
        ("Tango2_3840x2160_50fps_10bit_420.yuv", "Tango2", False),  # wrong frame rate
        ("Campfire_3840x2160_30fps_bt709_420_videoRange.yuv", "Campfire", True),
        ("CatRobot_1920x1080_60fps_10bit_420.yuv", "CatRobot", False),  # downscaled
        ("CatRobot_3840x2160_60fps_10bit_420.y4m", "CatRobot", True),
        ("CatRobot_3840x2160_60fps_10bit_420.mp4", "CatRobot", False),
        ("DaylightRoad2_3840x2160_60fps_10bit_420.yuv", "CatRobot", False),
    ],
)
def test_tolerant_name_matching(name: str, sequence: str, matches: bool) -> None:
    spec = next(s for s in load_class_list("jvet").sequences if s.name == sequence)
    assert (match_score(spec, Path(name)) is not None) == matches


def _write_frames(path: Path, width: int, height: int, frames: int = 1) -> None:
    path.write_bytes(bytes(frame_bytes(width, height, 8) * frames))


def test_find_class_d_in_mixed_dialects_and_list_what_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "ctc"
    (root / "classD").mkdir(parents=True)
    _write_frames(root / "classD" / "BasketballPass_416x240_50.yuv", 416, 240)
    _write_frames(root / "classD" / "D-BQSquare_416x240_60p_yuv420_8b.yuv", 416, 240)
    _write_frames(root / "BlowingBubbles_416x240_50fps_8bit_420.yuv", 416, 240, 2)
    _write_frames(root / "RaceHorses_832x480_30.yuv", 832, 480)  # class C's RaceHorses, not D's
    hevc = load_class_list("hevc")
    with pytest.raises(SequencesNotFoundError) as error:
        find_sequences(hevc, ["D", "E"], root, 1)
    message = str(error.value)
    assert "RaceHorses (class D, 416x240 30fps 8bit): not found" in message
    assert "FourPeople" in message and "Johnny" in message and "KristenAndSara" in message
    assert "BasketballPass" not in message and "\n" not in message

    _write_frames(root / "RaceHorses_416x240_30.yuv", 416, 240)
    found = {s.name: s for s in find_sequences(hevc, ["D", "C"][:1], root, 1)}
    assert set(found) == {"BasketballPass", "BQSquare", "BlowingBubbles", "RaceHorses"}
    assert Path(found["RaceHorses"].path).name == "RaceHorses_416x240_30.yuv"
    assert found["BlowingBubbles"].frame_count == 2 and found["BQSquare"].fps == 60
    with pytest.raises(SequencesNotFoundError, match="BasketballPass: BasketballPass_416x240_50.yuv has 1 frames, 2"):
        find_sequences(hevc, ["D"], root, 2)
    with pytest.raises(EvalError, match="unknown class"):
        find_sequences(hevc, ["Z"], root, 1)


def test_user_class_from_a_folder(tmp_path: Path) -> None:
    write_sample_class(tmp_path / "mine", ["astronaut", "rocket"], 64, 48, frames=2, bitdepth=10, fps=25)
    sequences = class_from_directory(tmp_path / "mine", 2)
    assert [s.name for s in sequences] == ["astronaut_64x48_25_10bit_420", "rocket_64x48_25_10bit_420"]
    assert {(s.seq_class, s.width, s.height, s.bitdepth, s.fps) for s in sequences} == {("mine", 64, 48, 10, 25)}
    frames = sequences[0].read_frames(1, 1)
    assert len(frames) == 1 and frames[0].bitdepth == 10
    (tmp_path / "mine" / "broken.yuv").write_bytes(b"123")
    with pytest.raises(SequencesNotFoundError, match="broken.yuv"):
        class_from_directory(tmp_path / "mine", 1)
