"""Batched Whisper (CAPTION_BATCHING, threshold 0) on a real worker: the same readable cues, word timestamps and
accuracy as the sequential path, and the result says which path ran."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import jiwer
import pytest
import srt

from geminivideo import procs
from geminivideo.video.tasks import caption_task
from tests.integration.captions.test_caption_task import NORMALISE, TASK_TIMEOUT_S, assert_readable
from tests.support import speech
from tests.support.env import TestEnv as HarnessEnv


@pytest.fixture(scope="module")
def batched_worker(test_env: HarnessEnv) -> Iterator[str]:
    """A worker that batches every input (threshold 0), on a queue private to this module."""
    queue = f"caption-batched-{uuid.uuid4().hex[:8]}"
    hostname = f"captions-batched-{uuid.uuid4().hex[:6]}@localhost"
    proc = procs.start_worker(
        "video", queues=[queue], hostname=hostname, concurrency=1,
        env=test_env.process_env(WHISPER_ALLOW_DOWNLOAD="false", CAPTION_BATCHING="true", CAPTION_BATCH_MIN_S="0",
                                 CAPTION_BATCH_SIZE="4"),
        log_path=test_env.root / f"{hostname}.log",
    )
    yield queue
    proc.stop()


def test_batched_captions_are_accurate_readable_and_keep_word_timestamps(batched_worker: str,
                                                                         test_env: HarnessEnv) -> None:
    video = speech.speech_video(speech.ENGLISH_SENTENCES, test_env.media_dir / f"batched-{uuid.uuid4().hex[:6]}.mp4")
    result = caption_task.apply_async(args=[str(video)], kwargs={"model": "tiny.en", "formats": ["srt", "json"],
                                                                 "word_timestamps": True},
                                      queue=batched_worker).get(timeout=TASK_TIMEOUT_S)
    assert result["batched"] is True
    cues = list(srt.parse(Path(result["srt_path"]).read_text(encoding="utf-8")))
    assert_readable(cues)  # the cue rules hold whatever the segment lengths of the batched pipeline
    heard = " ".join(cue.content.replace("\n", " ") for cue in cues)
    error_rate = jiwer.wer(" ".join(speech.ENGLISH_SENTENCES), heard, reference_transform=NORMALISE,
                           hypothesis_transform=NORMALISE)
    assert error_rate <= 0.35, (error_rate, heard)
    document = json.loads(Path(result["json_path"]).read_text(encoding="utf-8"))
    words = [w for s in document["segments"] for w in s["words"]]
    assert words and all(w["start"] <= w["end"] for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
