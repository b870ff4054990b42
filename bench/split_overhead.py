"""Benchmark: what split-and-stitch costs over one plain FFmpeg encode when a single segment worker does
every part (target ≤ 1.10× wall on this 2-core machine), in 5 alternating rounds per side.

It is ``bench.split_transcode``'s measurement (same input, workers, checks of every output and row format)
with its defaults set for a ratio target: a 300 s 1080p30 input (about the shortest that SPLIT_MIN_S's default splits,
where the split's fixed cost weighs most) in five 60 s parts, one worker, 5 rounds, the plain encode first in
even rounds and last in odd ones; each row gives the medians and every round's figures. A round of the 10-minute
input of ``bench.split_transcode`` is over half an hour of encoding on 2 cores, so that one runs once.

    .venv/bin/python -m bench.split_overhead [--runs 5] [--codecs vp9 av1] [--quick]

Writes bench/results/split_overhead.json (``--output PATH`` elsewhere; nothing with ``--quick``, which runs
20 s at 640x360, VP9, 5 s parts).
"""

from __future__ import annotations

from bench._common import RESULTS_DIR
from bench.split_transcode import main

RESULTS = RESULTS_DIR / "split_overhead.json"

if __name__ == "__main__":
    main(RESULTS, duration=300.0, segment_s=60.0, workers=[1], runs=5)
