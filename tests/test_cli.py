"""The `vcodec` console script end to end, as a user runs it: real processes, files and pipes.

Frames are tiny (64x48) and trained for 20 iterations with one torch thread per job, so that every
encode takes a few seconds; what is checked is the plumbing (formats, order, resume, errors), not
compression quality.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vcodec.bitstream.container import BitstreamError, ContainerReader, ContainerWriter
from vcodec.cli import ExitCode
from vcodec.decoder import decode_frame
from vcodec.io import frame_to_bytes, open_video, partial_path
from vcodec.sequence.encode import encode_sequence
from vcodec.sequence.settings import SOURCE_DIGEST_KEY, EncodeSettings

from process_events import wait_for_exit, wait_until, worker_processes

SCRIPT = Path(sys.executable).with_name("vcodec")
VCODEC = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "vcodec"]
# The plumbing is what is tested here, on one architecture: the default (auto) picks one per frame.
FAST = ["--lmbda", "0.001", "--preset", "fast", "--arch", "main", "--iterations", "20", "--threads", "1", "--settings",
        "-q"]


def vcodec(*args: str, cwd: Path, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*VCODEC, *args], cwd=cwd, input=input, capture_output=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"vcodec {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample clips written by `vcodec sample`, named as CTC sequences are."""
    root = tmp_path_factory.mktemp("cli")
    vcodec("sample", "-o", "Astro_64x48_30.yuv", "--size", "64x48", "--frames", "4", "-q", cwd=root)
    vcodec("sample", "-o", "Coffee_64x48_50fps_10bit_420.yuv", "--size", "64x48", "--frames", "2",
           "--bitdepth", "10", "--photo", "coffee", "-q", cwd=root)  # fmt: skip
    vcodec("sample", "-o", "chelsea.y4m", "--size", "64x48", "--frames", "2", "--photo", "chelsea", "--fps", "24",
           "-q", cwd=root)  # fmt: skip
    vcodec("sample", "-o", "Rocket_64x48_30.yuv", "--size", "64x48", "--frames", "4", "--photo", "rocket", "-q",
           cwd=root)  # the format of Astro_64x48_30.yuv, another picture
    return root


def info_json(path: Path) -> dict:
    return json.loads(vcodec("info", path.name, "--json", cwd=path.parent).stdout)


def decoded_frames(container: Path) -> list:
    with ContainerReader(container) as reader:
        return [decode_frame(reader.read_frame(i)) for i in range(reader.frame_count)]


@pytest.fixture(scope="module")
def astro(work: Path) -> Path:
    """The 4-frame 8-bit clip coded once with one job: the reference for order and determinism."""
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "astro.vcc", *FAST, "--csv", "astro.csv", cwd=work)
    return work / "astro.vcc"


def test_raw_8bit_round_trip_with_name_inference(work: Path, astro: Path) -> None:
    data = info_json(astro)
    assert data["complete"]
    assert data["sequence"] | {"duration_seconds": 0} == {
        "width": 64, "height": 48, "bitdepth": 8, "chroma_format": "420", "pix_fmt": "yuv420p",
        "fps": "30/1", "frame_count": 4, "duration_seconds": 0,
    }  # fmt: skip
    assert data["settings"]["preset"] == "fast" and data["settings"]["lmbda"] == 0.001
    assert data["architecture"]["arch_name"] == "main" and data["architecture"]["mac_per_pixel"] > 0
    total = sum(f["bytes"] for f in data["frames"])
    assert data["bitrate"]["kbps"] == pytest.approx(8 * total / 4 * 30 / 1000)

    vcodec("decode", "astro.vcc", "-o", "astro_dec.yuv", cwd=work)
    expected = b"".join(frame_to_bytes(f) for f in decoded_frames(astro))
    assert (work / "astro_dec.yuv").read_bytes() == expected

    rows = (work / "astro.csv").read_text().splitlines()
    assert rows[0] == ("frame,bits,bpp,psnr_y,psnr_u,psnr_v,psnr_yuv,lmbda,preset,encode_seconds,decode_seconds,arch,"
                       "target,probes")
    assert [int(r.split(",")[0]) for r in rows[1:]] == [0, 1, 2, 3]
    assert [r.split(",")[-3] for r in rows[1:]] == [f["arch"] for f in data["frames"]] == ["main"] * 4
    assert all(r.endswith(",,0") for r in rows[1:])  # no rate target, no probes
    assert [int(r.split(",")[1]) for r in rows[1:]] == [8 * f["bytes"] for f in data["frames"]]
    report = json.loads(vcodec("psnr", "Astro_64x48_30.yuv", "astro_dec.yuv", "--json", cwd=work).stdout)
    assert [round(f["y"], 4) for f in report["frames"]] == [float(r.split(",")[3]) for r in rows[1:]]

    text = vcodec("info", "astro.vcc", cwd=work).stdout.decode()
    assert "64x48, yuv420p" in text and "preset fast" in text and "MAC/pixel" in text and "kbps" in text


def test_a_one_frame_file_is_lean_and_info_shows_its_overhead(work: Path) -> None:
    """Without --settings, a one-frame file carries at most 40 bytes around its frame bitstream; `info`
    reports them, and each frame header's bytes; --resume cannot call it complete without its settings."""
    args = ["encode", "Astro_64x48_30.yuv", "-o", "lean.vcc", "--frames", "1", *FAST[:-2], "-q"]
    vcodec(*args, cwd=work)
    with ContainerReader(work / "lean.vcc") as reader:
        payload = reader.read_frame(0)
        assert reader.complete and reader.header.settings == {}
    overhead = (work / "lean.vcc").stat().st_size - len(payload)
    assert overhead <= 40, overhead
    data = info_json(work / "lean.vcc")
    assert data["format_version"] == 3 and data["container_bytes"] == overhead and data["settings"] == {}
    header_bytes = data["frames"][0]["header_bytes"]
    assert 10 < header_bytes < len(payload)
    text = vcodec("info", "lean.vcc", cwd=work).stdout.decode()
    assert f"({overhead} of container)" in text and f" {header_bytes}  main" in text
    refused = vcodec(*args, "--resume", cwd=work, check=False)
    assert refused.returncode == ExitCode.RESUME
    assert b"it holds no encoder settings" in refused.stderr


def test_substreams_change_only_how_the_latents_are_coded(work: Path) -> None:
    """--substreams: a 64x256 frame (tall enough for two bands) coded with 1 and with 3 substreams after the
    same training decodes to the same picture; info names the substreams, and 17 is refused in one line."""
    vcodec("sample", "-o", "tall_64x256_30.yuv", "--size", "64x256", "--frames", "1", "--photo", "chelsea", "-q",
           cwd=work)
    base = ["encode", "tall_64x256_30.yuv", "--lmbda", "0.001", "--preset", "fast", "--arch", "small", "--iterations",
            "20", "--threads", "1", "-q", "-y"]
    pictures = {}
    for count in (1, 3, 0):
        vcodec(*base, "-o", f"tall_{count}.vcc", "--substreams", str(count), cwd=work)
        assert info_json(work / f"tall_{count}.vcc")["frames"][0]["latent_substreams"] == (count or 2)
        pictures[count] = frame_to_bytes(decoded_frames(work / f"tall_{count}.vcc")[0])
    assert pictures[1] == pictures[3] == pictures[0]
    refused = vcodec(*base, "-o", "tall_17.vcc", "--substreams", "17", cwd=work, check=False)
    assert refused.returncode != 0 and len(refused.stderr.decode().strip().splitlines()) <= 3
    assert not (work / "tall_17.vcc").exists()


def test_csv_lines_end_in_lf(work: Path, astro: Path) -> None:
    data = (work / "astro.csv").read_bytes()
    assert data.count(b"\n") == 5 and b"\r" not in data


def test_decode_output_format_follows_the_suffix(work: Path, astro: Path) -> None:
    vcodec("decode", astro.name, "-o", "astro_dec.y4m", "-q", cwd=work)
    assert (work / "astro_dec.y4m").read_bytes().startswith(b"YUV4MPEG2 W64 H48 F30:1")
    vcodec("decode", astro.name, "-o", "astro_forced.bin", "--format", "raw", "-q", cwd=work)
    assert len((work / "astro_forced.bin").read_bytes()) == 4 * 64 * 48 * 3 // 2


def test_raw_10bit_round_trip_from_the_name(work: Path) -> None:
    vcodec("encode", "Coffee_64x48_50fps_10bit_420.yuv", "-o", "coffee.vcc", "--rate", "r2", *FAST[2:], cwd=work)
    data = info_json(work / "coffee.vcc")
    assert (data["sequence"]["bitdepth"], data["sequence"]["fps"], data["sequence"]["frame_count"]) == (10, "50/1", 2)
    assert data["settings"]["rate"] == "r2" and data["settings"]["lmbda"] == 0.001
    vcodec("decode", "coffee.vcc", "-o", "coffee_dec.yuv", cwd=work)
    raw = (work / "coffee_dec.yuv").read_bytes()
    assert len(raw) == 2 * 64 * 48 * 3 // 2 * 2
    samples = np.frombuffer(raw, dtype="<u2")
    assert samples.max() <= 1023 and samples.max() > 255


def test_y4m_and_pipes(work: Path) -> None:
    """ffmpeg-style: y4m into stdin, y4m out of stdout into `vcodec psnr`; raw stdin with --size."""
    source = (work / "chelsea.y4m").read_bytes()
    vcodec("encode", "-", "-o", "chelsea.vcc", *FAST, input=source, cwd=work)
    data = info_json(work / "chelsea.vcc")
    assert (data["sequence"]["fps"], data["sequence"]["frame_count"]) == ("24/1", 2)

    decoded = vcodec("decode", "chelsea.vcc", "-o", "-", "--format", "y4m", "-q", cwd=work).stdout
    assert decoded.startswith(b"YUV4MPEG2 W64 H48 F24:1")
    compared = vcodec("psnr", "chelsea.y4m", "-", input=decoded, cwd=work).stdout.decode()
    assert compared.count("frame ") == 2 and "mean of 2 frames" in compared

    with open_video(str(work / "chelsea.y4m")) as clip:
        raw = b"".join(frame_to_bytes(f) for f in clip.frames())
    vcodec("encode", "-", "-o", "piped.vcc", "--size", "64x48", "--fps", "24", *FAST, input=raw, cwd=work)
    assert (work / "piped.vcc").read_bytes() == (work / "chelsea.vcc").read_bytes()


def test_frame_range_decode(work: Path, astro: Path) -> None:
    frame_size = 64 * 48 * 3 // 2
    full = vcodec("decode", astro.name, "-o", "-", "-q", cwd=work).stdout
    middle = vcodec("decode", astro.name, "-o", "-", "--frames", "1:3", "-q", cwd=work).stdout
    assert middle == full[frame_size : 3 * frame_size]
    assert vcodec("decode", astro.name, "-o", "-", "--frames", "3:", "-q", cwd=work).stdout == full[3 * frame_size :]


def test_range_decode_does_not_read_other_frames(work: Path, astro: Path) -> None:
    damaged = work / "damaged.vcc"
    data = bytearray(astro.read_bytes())
    with ContainerReader(astro) as reader:
        data[reader.entries[0].payload_offset + 3] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert vcodec("decode", damaged.name, "-o", "-", "--frames", "1:2", "-q", cwd=work).returncode == 0


def test_jobs_write_frames_in_order_and_runs_are_reproducible(work: Path, astro: Path) -> None:
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "astro_j2.vcc", *FAST, "--jobs", "2", cwd=work)
    assert (work / "astro_j2.vcc").read_bytes() == astro.read_bytes()
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "astro_again.vcc", *FAST, cwd=work)
    assert (work / "astro_again.vcc").read_bytes() == astro.read_bytes()


def test_start_and_frames_select_the_input(work: Path) -> None:
    # cold frames: a warm-started frame depends on the frame coded before it, which --start leaves out
    cold = [*FAST, "--no-warm-start"]
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "astro_cold.vcc", *cold, "--frames", "3", cwd=work)
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "astro_12.vcc", *cold, "--start", "1", "--frames", "2", cwd=work)
    with ContainerReader(work / "astro_cold.vcc") as full, ContainerReader(work / "astro_12.vcc") as part:
        assert [part.read_frame(i) for i in range(2)] == [full.read_frame(i) for i in (1, 2)]
        assert part.header.settings["start"] == 1


def complete_frames(container: Path) -> int:
    """Complete frames of a container that may still be being written (0 before its header is on disk)."""
    try:
        with ContainerReader(container) as reader:
            return reader.frame_count
    except (OSError, BitstreamError):  # not created yet, or its header only half written
        return 0


def wait_for_frames(partial: Path, count: int, process: subprocess.Popen, timeout: float = 180) -> None:
    """Until `partial` holds `count` complete frames, woken by each write to its folder."""
    wait_until(lambda: complete_frames(partial) >= count, partial.parent, process, timeout,
               f"{partial.name} held {count} complete frame(s)")


# An encode long enough to be stopped after its first frame (2-3 s a frame here): with --jobs 2 the
# last frame starts when the first lands, and the test must signal before it ends, also on a busy machine.
STOPPABLE = ["--frames", "3", "--lmbda", "0.001", "--preset", "fast", "--arch", "main", "--iterations", "120",
             "--threads", "1"]


@pytest.fixture(scope="module")
def uninterrupted(work: Path) -> Path:
    """The first 3 frames coded in one go, with the settings of the encodes the tests below interrupt."""
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "uninterrupted.vcc", *STOPPABLE, "--settings", "-q", cwd=work)
    return work / "uninterrupted.vcc"


@pytest.fixture(scope="module")
def uninterrupted_cold(work: Path) -> Path:
    """The same, every frame cold (--no-warm-start): what an encode spread over two workers writes."""
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "uninterrupted_cold.vcc", *STOPPABLE, "--no-warm-start",
           "--settings", "-q", cwd=work)
    return work / "uninterrupted_cold.vcc"


def assert_frames_kept(partial: Path, reference: Path) -> int:
    """The complete frames of an interrupted encode decode to those of the uninterrupted one; how many."""
    expected = decoded_frames(reference)
    with ContainerReader(partial) as reader:
        kept = reader.frame_count
        assert not reader.complete and 1 <= kept < len(expected)
        for number in range(kept):
            assert frame_to_bytes(decode_frame(reader.read_frame(number))) == frame_to_bytes(expected[number])
    return kept


def test_resume_after_sigkill(work: Path, uninterrupted: Path) -> None:
    """Frames kept by a killed encode, and those a resume adds, are those of an uninterrupted encode."""
    args = ["encode", "Astro_64x48_30.yuv", "-o", "killed.vcc", *STOPPABLE, "--csv", "killed.csv", "--settings",
            "-q"]
    process = subprocess.Popen([*VCODEC, *args], cwd=work, stderr=subprocess.DEVNULL)
    partial = work / "killed.vcc.partial"
    try:
        wait_for_frames(partial, 1, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (work / "killed.vcc").exists()
    kept = assert_frames_kept(partial, uninterrupted)
    listed = vcodec("info", partial.name, cwd=work).stdout.decode()
    assert "UNFINISHED" in listed

    refused = vcodec(*args, cwd=work, check=False)  # its CSV exists too: the hint is still --resume, not -y
    assert refused.returncode == ExitCode.OUTPUT_EXISTS
    assert refused.stderr == b"vcodec: error: killed.vcc.partial holds an interrupted encode: add --resume to " \
                             b"continue it, or -y to start over\n"
    resumed = vcodec(*args[:-1], "--resume", cwd=work)
    assert f"resuming after {kept} complete frames".encode() in resumed.stderr
    assert not partial.exists()
    assert [row.split(",")[0] for row in (work / "killed.csv").read_text().splitlines()] == ["frame", "0", "1", "2"]

    resumed_frames = decoded_frames(work / "killed.vcc")
    assert [frame_to_bytes(f) for f in resumed_frames] == [frame_to_bytes(f) for f in decoded_frames(uninterrupted)]
    assert (work / "killed.vcc").read_bytes() == uninterrupted.read_bytes()
    again = vcodec(*args[:-1], "--resume", cwd=work)
    assert b"already complete" in again.stderr


def test_csv_rows_of_kept_frames_survive_a_kill(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Death right after a frame reaches the container (nothing after the append runs, as with SIGKILL)
    leaves that frame's CSV row too, and a resume completes the CSV."""
    real_append = ContainerWriter.append

    def append_then_die(self: ContainerWriter, payload: bytes) -> None:
        real_append(self, payload)
        raise SystemExit("killed")

    settings = EncodeSettings(0.001, arch="main", preset="fast", iterations=20)
    monkeypatch.setattr(ContainerWriter, "append", append_then_die)
    with open_video(str(work / "Astro_64x48_30.yuv"), frames=2) as source, pytest.raises(SystemExit):
        encode_sequence(source, work / "csvkill.vcc", settings, threads=1, csv_path=work / "csvkill.csv")
    monkeypatch.undo()
    assert complete_frames(work / "csvkill.vcc.partial") == 1
    assert [row.split(",")[0] for row in (work / "csvkill.csv").read_text().splitlines()] == ["frame", "0"]
    with open_video(str(work / "Astro_64x48_30.yuv"), frames=2) as source:
        encode_sequence(source, work / "csvkill.vcc", settings, threads=1, resume=True, csv_path=work / "csvkill.csv")
    assert [row.split(",")[0] for row in (work / "csvkill.csv").read_text().splitlines()] == ["frame", "0", "1"]


def test_interrupt_while_the_first_frame_is_synced_keeps_it(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM during the fsync of the first frame's record, which is then on disk but not yet
    counted, keeps the partial file: the encode deleted it as one that had written nothing (the Ctrl-C
    and SIGTERM tests below, on a loaded machine, found neither the partial nor the --resume hint)."""
    real_append = ContainerWriter.append

    def append_interrupted_before_counting(self: ContainerWriter, payload: bytes) -> None:
        real_append(self, payload)
        self.entries.pop()  # as if the interrupt came in its fsync, before the frame was counted
        raise KeyboardInterrupt

    settings = EncodeSettings(0.001, arch="main", preset="fast", iterations=20)
    monkeypatch.setattr(ContainerWriter, "append", append_interrupted_before_counting)
    with open_video(str(work / "Astro_64x48_30.yuv"), frames=2) as source, pytest.raises(KeyboardInterrupt):
        encode_sequence(source, work / "synced.vcc", settings, threads=1)
    monkeypatch.undo()
    assert complete_frames(work / "synced.vcc.partial") == 1
    with open_video(str(work / "Astro_64x48_30.yuv"), frames=2) as source:
        summary = encode_sequence(source, work / "synced.vcc", settings, threads=1, resume=True)
    assert (summary.resumed_frames, summary.frames) == (1, 2)


def test_sigterm_keeps_finished_frames_and_stops_the_workers(work: Path, uninterrupted_cold: Path) -> None:
    """SIGTERM (what kill, systemd and batch schedulers send) stops an encode as Ctrl-C does: exit 130,
    one line, the finished frames kept for --resume, and no worker left behind."""
    # cold frames (no warm chain), so that the two workers each take one
    args = ["encode", "Astro_64x48_30.yuv", "-o", "terminated.vcc", *STOPPABLE, "--jobs", "2", "--no-warm-start"]
    process = subprocess.Popen([*VCODEC, *args], cwd=work, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_frames(work / "terminated.vcc.partial", 1, process)
        workers = worker_processes(process.pid)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = stderr.decode()
    assert process.returncode == ExitCode.INTERRUPTED, text
    kept_in = "terminated.vcc.partial: add --resume to continue"
    assert text == f"vcodec: error: interrupted; finished frames are kept in {kept_in}\n"
    assert len(workers) == 2 and wait_for_exit(workers, 10) == []
    assert_frames_kept(work / "terminated.vcc.partial", uninterrupted_cold)
    assert not (work / "terminated.vcc").exists()


def test_workers_die_with_a_killed_encoder(work: Path) -> None:
    """kill -9 of `vcodec encode -j 2` takes its workers with it: they would otherwise train on for nobody."""
    args = ["encode", "Astro_64x48_30.yuv", "-o", "orphans.vcc", "--lmbda", "0.001", "--preset", "fast",
            "--arch", "main", "--iterations", "200", "--threads", "1", "--jobs", "2", "--no-warm-start", "-q"]  # fmt: skip
    process = subprocess.Popen([*VCODEC, *args], cwd=work, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Once frame 0 is written, both workers are past their start-up and coding frames 1-3.
        wait_for_frames(work / "orphans.vcc.partial", 1, process)
        workers = worker_processes(process.pid)
        assert len(workers) == 2
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert wait_for_exit(workers, 5) == [], "workers outlived their killed parent"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the session, should the test fail


def partial_from(reference: Path, partial: Path, frames: int) -> bytes:
    """What an encode of `reference`'s input and settings leaves when stopped after `frames` frames."""
    with ContainerReader(reference) as reader:
        writer = ContainerWriter.create(partial, replace(reader.header, frame_count=0))
        for number in range(frames):
            writer.append(reader.read_frame(number))
        writer.close()
    return partial.read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--lmbda", "0.004"], "it was coded with lmbda=0.001, this run asks for lmbda=0.004"),
        (["--iterations", "121"], "it was coded with iterations=120, this run asks for iterations=121"),
        (["--seed", "3"], "it was coded with seed=0, this run asks for seed=3"),
        (["--preset", "medium"], "it was coded with preset='fast', this run asks for preset='medium'"),
        (["--arch", "light"], "it was coded with arch='main', this run asks for arch='light'"),
        (["--start", "1"], "it was coded with start=0, this run asks for start=1"),
        (["--input", "Coffee_64x48_50fps_10bit_420.yuv"],
         "it holds 64x48 8-bit 30 fps, the input is 64x48 10-bit 50 fps"),
        (["--input", "Rocket_64x48_30.yuv"],
         "it was coded from another input (first frame sha256 {astro}..., this input's {rocket}...)"),
    ],
    ids=["lmbda", "iterations", "seed", "preset", "arch", "start", "format", "another clip"],
)
def test_resume_with_other_settings_is_refused(work: Path, uninterrupted: Path, change: list[str],
                                               message: str) -> None:
    """Exit 7 and one line naming what differs, before any training; the partial file is left as it was."""
    output = work / f"mismatch_{change[0].strip('-')}.vcc"
    partial = partial_path(output)
    before = partial_from(uninterrupted, partial, 1)
    settings = dict(zip(STOPPABLE[::2], STOPPABLE[1::2])) | {"--input": "Astro_64x48_30.yuv"}
    settings.update(zip(change[::2], change[1::2]))
    source = settings.pop("--input")
    result = vcodec("encode", source, "-o", output.name, *(a for kv in settings.items() for a in kv), "--resume",
                    cwd=work, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == ExitCode.RESUME, stderr
    digests = {name: hashlib.sha256((work / f"{name.title()}_64x48_30.yuv").read_bytes()[: 64 * 48 * 3 // 2])
               .hexdigest()[:16] for name in ("astro", "rocket")}
    assert stderr == f"vcodec: error: cannot resume {partial.name}: {message.format(**digests)}\n"
    assert partial.read_bytes() == before and not output.exists()


def test_a_partial_file_without_a_source_digest_still_resumes(work: Path, uninterrupted: Path) -> None:
    """Files interrupted before the digest was stored are continued (without that check)."""
    with ContainerReader(uninterrupted) as reader:
        settings = dict(reader.header.settings)
    assert len(settings.pop(SOURCE_DIGEST_KEY)) == 64
    partial = work / "old.vcc.partial"
    with ContainerReader(uninterrupted) as reader:
        writer = ContainerWriter.create(partial, replace(reader.header, frame_count=0, settings=settings))
        writer.append(reader.read_frame(0))
        writer.close()
    vcodec("encode", "Astro_64x48_30.yuv", "-o", "old.vcc", *STOPPABLE, "--resume", "-q", cwd=work)
    assert [frame_to_bytes(f) for f in decoded_frames(work / "old.vcc")] == [
        frame_to_bytes(f) for f in decoded_frames(uninterrupted)]


def test_ctrl_c_keeps_finished_frames(work: Path) -> None:
    args = ["encode", "Astro_64x48_30.yuv", "-o", "stopped.vcc", "--lmbda", "0.001", "--preset", "fast",
            "--iterations", "100", "--threads", "1", "--jobs", "2"]  # fmt: skip
    # Ctrl-C in a terminal signals the whole process group: the encoder and its workers. A shell starts
    # background commands with SIGINT ignored, and Python keeps an inherited SIG_IGN: restore the default
    # so the test does not depend on how the suite itself was started.
    process = subprocess.Popen([*VCODEC, *args], cwd=work, stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_frames(work / "stopped.vcc.partial", 1, process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    text = stderr.decode()
    assert process.returncode == ExitCode.INTERRUPTED, text
    assert text.startswith("vcodec: error: interrupted") and text.count("\n") == 1, text
    assert "stopped.vcc.partial: add --resume" in text


PSNR_MISMATCHES = [
    ("small.yuv", "frame sizes or frame counts differ: small.yuv, read at the size of Astro_64x48_30.yuv (64x48 "
     "8-bit; a raw file does not say its own), has 1 frame, Astro_64x48_30.yuv 4; if its frames are of another "
     "size, give it in its name (e.g. clip_WxH.yuv) or compare a y4m"),
    ("small2.yuv", "frame sizes differ: small2.yuv is not 64x48 8-bit like Astro_64x48_30.yuv (2304 bytes are not "
     "a whole number of its 4608-byte frames); a raw file does not say its size: give it in its name (e.g. "
     "clip_WxH.yuv) or compare a y4m"),
    ("Small_32x24_30.yuv", "frame sizes differ: Astro_64x48_30.yuv is 64x48 8-bit, Small_32x24_30.yuv is 32x24 8-bit"),
    ("small.y4m", "frame sizes differ: Astro_64x48_30.yuv is 64x48 8-bit, small.y4m is 32x24 8-bit"),
    ("Coffee_64x48_50fps_10bit_420.yuv", "frame sizes differ: Astro_64x48_30.yuv is 64x48 8-bit, "
     "Coffee_64x48_50fps_10bit_420.yuv is 64x48 10-bit"),
]


@pytest.mark.parametrize(("distorted", "message"), PSNR_MISMATCHES, ids=[m[0] for m in PSNR_MISMATCHES])
def test_psnr_names_a_size_mismatch(work: Path, distorted: str, message: str) -> None:
    """A decoded video of another size is refused as such (exit 2, one line), not blamed on frame counts."""
    for name, frames in (("small.yuv", "4"), ("small2.yuv", "2"), ("Small_32x24_30.yuv", "4"), ("small.y4m", "4")):
        vcodec("sample", "-o", name, "--size", "32x24", "--frames", frames, "-q", "-y", cwd=work)
    result = vcodec("psnr", "Astro_64x48_30.yuv", distorted, cwd=work, check=False)
    assert result.returncode == ExitCode.USAGE, result.stderr.decode()
    assert result.stderr.decode() == f"vcodec: error: {message}\n"


def test_psnr_counts_frames_of_a_pipe(work: Path) -> None:
    three = b"".join(frame_to_bytes(f) for f in open_video(str(work / "Astro_64x48_30.yuv"), frames=3).frames())
    result = vcodec("psnr", "Astro_64x48_30.yuv", "-", "--size", "64x48", input=three, cwd=work, check=False)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr == b"vcodec: error: frame counts differ: stdin has 3 frames, Astro_64x48_30.yuv 4\n"


@pytest.fixture(scope="module")
def large(work: Path) -> Path:
    """One frame whose decoded bytes (73728) overfill a pipe's 64 KiB buffer, so a writer must wait."""
    vcodec("sample", "-o", "Large_256x192_30.yuv", "--size", "256x192", "--frames", "1", "-q", cwd=work)
    vcodec("encode", "Large_256x192_30.yuv", "-o", "large.vcc", *FAST, cwd=work)
    return work / "large.vcc"


@pytest.mark.parametrize(
    "args",
    [["decode", "large.vcc", "-o", "-"], ["sample", "-o", "-", "--size", "256x192", "--frames", "2"]],
    ids=["decode", "sample"],
)
def test_a_reader_that_leaves_early_gives_exit_141_quietly(work: Path, large: Path, args: list[str]) -> None:
    """`vcodec decode x.vcc -o - | head -c 100`: the reader takes 100 bytes and closes the pipe."""
    process = subprocess.Popen([*VCODEC, *args], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(os.read(process.stdout.fileno(), 100)) > 0
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == ExitCode.BROKEN_PIPE, stderr.decode()
    assert stderr == b""


def test_quiet_prints_nothing(work: Path, astro: Path) -> None:
    result = vcodec("decode", astro.name, "-o", "quiet.yuv", "-q", cwd=work)
    assert result.stderr == b"" and result.stdout == b""


@pytest.fixture(scope="module")
def broken(work: Path, astro: Path) -> Path:
    """Containers damaged in the ways a disk or a copy can damage them."""
    with ContainerReader(astro) as reader:
        entry = reader.entries[2]
    data = astro.read_bytes()
    corrupt = bytearray(data)
    corrupt[entry.payload_offset + 5] ^= 0x40
    (work / "corrupt.vcc").write_bytes(bytes(corrupt))
    (work / "truncated.vcc").write_bytes(data[: entry.offset + 9])
    (work / "garbage.vcc").write_bytes(data + b"appended by a bad copy")
    (work / "oddsize.yuv").write_bytes((work / "Astro_64x48_30.yuv").read_bytes()[:-7])
    (work / "exists.vcc").write_bytes(b"precious")
    return work


DAMAGED = [
    ("corrupt.vcc", [0, 1, 3], "corrupt.vcc: frame 2 is damaged (CRC mismatch) and skipped: {out} holds the 3 intact "
     "frames of 4"),
    ("truncated.vcc", [0, 1], "truncated.vcc: the container is damaged (the file is cut short), and frames 2, 3 are "
     "damaged (missing) and skipped: {out} holds the 2 intact frames of 4"),
    ("garbage.vcc", [0, 1, 2, 3], "garbage.vcc: the container is damaged (22 unexpected bytes follow its end): all 4 "
     "frames are intact and were written to {out}"),
]


@pytest.mark.parametrize(("name", "intact", "message"), DAMAGED, ids=[d[0] for d in DAMAGED])
@pytest.mark.parametrize("out", ["intact.yuv", "-"])
def test_a_damaged_container_gives_its_intact_frames(broken: Path, astro: Path, name: str, intact: list[int],
                                                      message: str, out: str) -> None:
    """The intact frames are written (damaged ones skipped), one line names the damage, exit 4."""
    result = vcodec("decode", name, "-o", out, "-y", cwd=broken, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == ExitCode.BITSTREAM, stderr
    assert stderr == f"vcodec: error: {message.format(out=out)}\n"
    reference = [frame_to_bytes(frame) for frame in decoded_frames(astro)]
    written = result.stdout if out == "-" else (broken / out).read_bytes()
    assert written == b"".join(reference[number] for number in intact)
    assert not (broken / "intact.yuv.partial").exists()


ERRORS = [
    (["encode", "oddsize.yuv", "--size", "64x48", *FAST], ExitCode.INPUT, "not a whole number of 64x48 yuv420p frames"),
    (["encode", "Astro_64x48_30.yuv", "--size", "64x40", *FAST], ExitCode.INPUT, "not a whole number"),
    (["encode", "oddsize.yuv", *FAST], ExitCode.USAGE, "raw input needs --size"),
    (["encode", "Astro_64x48_30.yuv", "--size", "63x48", *FAST], ExitCode.INPUT, "odd"),
    (["encode", "Astro_64x48_30.yuv", "--pix-fmt", "yuv444p", *FAST], ExitCode.INPUT, "unsupported pixel format"),
    (["encode", "Astro_64x48_30.yuv", "--pix-fmt", "yuv420p"], ExitCode.USAGE, "--lmbda"),
    (["encode", "Astro_64x48_30.yuv", "--lmbda", "1e-3", "--preset", "turbo", "-q"], ExitCode.USAGE, "turbo"),
    (["encode", "Astro_64x48_30.yuv", "--rate", "r9", *FAST[2:]], ExitCode.USAGE, "unknown rate point"),
    (["encode", "missing.yuv", "--size", "64x48", *FAST], ExitCode.IO, "missing.yuv: No such file"),
    (["encode", "Astro_64x48_30.yuv", *FAST], ExitCode.OUTPUT_EXISTS, "exists.vcc already exists (use -y"),
    (["decode", "corrupt.vcc", "-o", "out.yuv", "--strict"], ExitCode.BITSTREAM,
     "corrupt.vcc: frame 2 is damaged (CRC mismatch); nothing was written (--strict)"),
    (["decode", "truncated.vcc", "-o", "out.y4m", "--strict"], ExitCode.BITSTREAM,
     "truncated.vcc: the container is damaged (the file is cut short), and frames 2, 3 are damaged (missing); "
     "nothing was written (--strict)"),
    (["decode", "garbage.vcc", "-o", "out.yuv", "--strict"], ExitCode.BITSTREAM,
     "garbage.vcc: the container is damaged (22 unexpected bytes follow its end); nothing was written (--strict)"),
    (["info", "truncated.vcc"], ExitCode.BITSTREAM, "truncated"),
    (["info", "corrupt.vcc"], ExitCode.BITSTREAM, "frame(s) 2 are damaged"),
    (["decode", "Astro_64x48_30.yuv", "-o", "out.yuv"], ExitCode.BITSTREAM, "not a vcodec container"),
    (["decode", "astro.vcc", "-o", "out.yuv", "--frames", "7:9"], ExitCode.USAGE, "starts after the last frame"),
    (["decode", "astro.vcc", "-o", "out.yuv", "--frames", "0"], ExitCode.USAGE, "frame range '0' is empty"),
    (["decode", "astro.vcc", "-o", "out.yuv", "--frames", "1:5"], ExitCode.USAGE, "the stream has 4 frames"),
    (["decode", "astro.vcc", "-o", "out.mp4"], ExitCode.USAGE, "vcodec writes raw YUV (.yuv), y4m (.y4m) or a PNG picture (.png)"),
    (["decode", "astro.vcc", "-o", "out.yuv", "--format", "y4m"], ExitCode.USAGE, "contradicts the suffix"),
    (["sample", "-o", "out.mp4", "--size", "64x48"], ExitCode.USAGE, "vcodec writes raw YUV (.yuv) or y4m (.y4m)"),
    (["encode", "Astro_64x48_30.yuv", "-o", "out.y4m", *FAST], ExitCode.USAGE, "is a .vcc container"),
    (["encode", "Astro_64x48_30.yuv", "--jobs", "many", *FAST], ExitCode.USAGE, "--jobs"),
    pytest.param(["encode", "Astro_64x48_30.yuv", "--device", "cuda", *FAST], ExitCode.USAGE,
                 "no CUDA device is available", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
]


@pytest.mark.parametrize(("args", "code", "message"), ERRORS, ids=[getattr(e, "values", e)[2][:30] for e in ERRORS])
def test_errors_are_one_line_with_their_exit_code(broken: Path, args: list[str], code: int, message: str) -> None:
    if args[0] == "encode" and "-o" not in args:
        args = [*args[:2], "-o", "exists.vcc" if code == ExitCode.OUTPUT_EXISTS else "new.vcc", *args[2:]]
    result = vcodec(*args, cwd=broken, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert stderr.startswith("vcodec: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert (broken / "exists.vcc").read_bytes() == b"precious"
    output = args[args.index("-o") + 1] if "-o" in args else None
    if output is not None and output != "exists.vcc":
        assert not (broken / output).exists() and not (broken / f"{output}.partial").exists()
