"""Whole sequences: code every frame of a video into a `.vcc` container, decode ranges of one, describe it.

These are the library functions behind `vcodec encode`, `decode`, `info`, `psnr` and `sample`; the
command line only parses options and prints. Each module has one job, and the command that needs it
imports it by name (this package re-exports nothing):

- `encode`: `encode_sequence`, a short pipeline over the modules below it;
- `settings`: what the user chose (`EncodeSettings`, the lambda, the input's digest);
- `resume`: opening the output, and continuing an interrupted encode only where it is the same one;
- `jobs`: coding frames in this process or in worker processes, in frame order, with progress;
- `reports`: what an encode reports while it runs and when it ends;
- `csv_log`: the per-frame CSV of `--csv`;
- `containers`: opening a container to read, from a file or stdin;
- `decode`: `decode_sequence`, which still gives the intact frames of a damaged container;
- `info`: `describe_container`, what `vcodec info` shows;
- `psnr`: comparing a decoded video with its source (in YUV), or a decoded picture with its own (in RGB);
- `sample`: a short test clip from a photo.

The info and decode paths import neither torch nor the encoder at module level, so that `vcodec info`
starts at once (tests/test_startup.py).
"""
