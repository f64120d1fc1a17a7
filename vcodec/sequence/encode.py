"""`vcodec encode`: code every frame of a video into a `.vcc` container.

The encode can stop and resume at any frame: each finished frame is appended to `<output>.partial`
and made durable before the next is written, and the partial file is renamed over the output only
when the sequence is complete. A resume inside a warm-start chain (vcodec.sequence.jobs) trains the
chain's earlier frames again, unwritten, so that it writes what an uninterrupted encode writes.
`encode_sequence` is the pipeline; its steps live in the modules it imports (settings, resume, jobs,
csv_log, reports).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from vcodec.format import check_frame_size
from vcodec.io import STDIN, InputError, OptionError, VideoInfo, VideoSource, check_overwrite
from vcodec.io.output import commit_partial
from vcodec.sequence.csv_log import CsvLog, csv_row
from vcodec.sequence.jobs import chain_start, coded_frames, threads_per_job
from vcodec.sequence.rate_targets import REACHED_KEY, coding_goal, reached_record
from vcodec.sequence.reports import EncodeObserver, EncodeSummary, SilentObserver
from vcodec.sequence.resume import header_for, open_output, refuse_existing
from vcodec.sequence.settings import EncodeSettings

CONTAINER_SUFFIX = ".vcc"


def encode_sequence(
    source: VideoSource,
    output: Path,
    settings: EncodeSettings,
    *,
    start: int = 0,
    jobs: int = 1,
    threads: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    csv_path: Path | None = None,
    observer: EncodeObserver | None = None,
) -> EncodeSummary:
    """Code every frame `source` yields into the container `output`.

    `start` is the source frame the selection began at (recorded, so that a resume reads the same
    frames). With `resume`, an interrupted `<output>.partial` is continued after its last complete
    frame. Raises OutputExistsError rather than replace a file without `overwrite`.
    """
    if jobs < 1:
        raise OptionError(f"--jobs {jobs} must be at least 1")
    if str(output) == STDIN:
        raise OptionError("the container must be written to a file (-o OUT.vcc): it is finished in place")
    if output.suffix.lower() != CONTAINER_SUFFIX:
        raise OptionError(f"{output}: the output of an encode is a {CONTAINER_SUFFIX} container (-o NAME.vcc)")
    check_frame_size(source.info.width, source.info.height, InputError, source.name)
    observer = observer or SilentObserver()
    if settings.device == "cuda":
        from vcodec.encoder.encode import check_device

        check_device(settings.device)
    if not resume:  # the container first: after an interrupted encode its CSV exists too; the hint is --resume
        refuse_existing(output, overwrite)
        if csv_path is not None:
            check_overwrite(csv_path, overwrite)
    config = settings.encoder_config()
    began = time.perf_counter()
    frames = source.frames()
    first = next(frames, None)  # its digest identifies the input in the header
    if first is None:
        raise OptionError(f"{source.name}: no frames to encode")
    header = header_for(source.info, settings.record(config, start, first))
    goal = coding_goal(settings.lmbda, settings.target, source.info, header)
    opened = open_output(output, header, overwrite, resume, source.info.frame_count)
    if isinstance(opened, EncodeSummary):
        return opened
    writer = opened
    resumed = writer.frame_count
    # Frames a resume keeps are read past (the first one was needed for its digest anyway), except those of
    # a warm-start chain it stopped in: they are trained again, not written, so that the frame after them
    # starts from the same model as in an uninterrupted encode.
    replayed = chain_start(resumed, config)
    remaining = itertools.islice(itertools.chain([first], frames), replayed, None)
    log = None
    append_begun = False
    summary = EncodeSummary(output, source.info, 0, 0, resumed)
    try:
        if csv_path is not None:
            log = CsvLog(csv_path, resumed)
        observer.started(source.info.frame_count, resumed)
        per_job = threads_per_job(jobs, threads)
        for data, stats in coded_frames(remaining, replayed, goal, config, jobs, per_job, observer):
            if stats.number < resumed:
                continue  # trained again for the model the next frame starts from; the file has it already
            # The CSV row first: a kill between the two leaves a row for a frame not in the container,
            # which a resume drops and writes again, never a kept frame without its row.
            if log is not None:
                log.write(csv_row(stats, settings.lmbda, settings.preset))
            append_begun = True
            writer.append(data)
            summary.coded.append(stats)
            observer.frame_done(stats)
        if not writer.frame_count:
            raise OptionError(f"{source.name}: no frames to encode")
        kept = None
        if settings.target is not None:  # what was reached joins the settings, for `vcodec info`
            frame_bytes = sum(entry.length for entry in writer.entries)
            pixels = source.info.width * source.info.height
            reached = reached_record(summary.coded, frame_bytes, writer.frame_count, pixels)
            kept = {**writer.header.settings, REACHED_KEY: reached}
        writer.finish(keep_settings=settings.keeps_settings, settings=kept)
    except BaseException:
        writer.close()
        # An encode that wrote no frame leaves nothing behind. Once an append has begun, its record may
        # be complete on disk though not yet counted (Ctrl-C or SIGTERM during its fsync): kept for --resume.
        if writer.frame_count == 0 and not append_begun:
            writer.path.unlink(missing_ok=True)
        raise
    finally:
        if log is not None:
            log.close()
    writer.close()
    commit_partial(writer.path, output)
    summary.frames = writer.frame_count
    summary.total_bytes = sum(entry.length for entry in writer.entries)
    summary.info = VideoInfo(header.width, header.height, header.bitdepth, header.fps, writer.frame_count)
    summary.wall_seconds = time.perf_counter() - began
    return summary
