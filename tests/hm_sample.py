"""Where the HM anchor tests find HM-18.0's sample outputs (README.md, "HM tests"): the folder
`shared/hm-sample` next to the checkout, or the one VCODEC_HM_SAMPLE names."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HM_SAMPLE = Path(__file__).resolve().parent.parent.parent / "shared" / "hm-sample"
HM_SAMPLE = Path(os.environ.get("VCODEC_HM_SAMPLE", DEFAULT_HM_SAMPLE))
