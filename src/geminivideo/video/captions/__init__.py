"""Whisper captions: the caption pipeline, readable cues (SRT/WebVTT) and the offline models."""
