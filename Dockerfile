# One image per worker family, from the same file:
#   docker build --build-arg EXTRAS=video -t geminivideo-video .   (video workers: FFmpeg, Whisper)
#   docker build --build-arg EXTRAS=ml -t geminivideo-ml .         (API, ML workers, beats, Flower)
FROM python:3.11-slim-bookworm

ARG EXTRAS=video
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TEMP_DIR=/data/tmp \
    RENDER_DIR=/data/renders \
    PREVIEW_DIR=/data/previews \
    MEDIA_ROOTS=/data/tmp:/data/renders:/data/previews:/data/media \
    WHISPER_CACHE_DIR=/app/var/whisper-models \
    WINNER_INDEX_PATH=/app/var/winner_index

# FFmpeg (render, transcode, preview, audio for Whisper), espeak-ng (demo speech), fonts for drawtext/libass.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg espeak-ng fonts-dejavu-core fonts-symbola fontconfig \
 && rm -rf /var/lib/apt/lists/*

# Workers never run as root: a crafted input that escaped FFmpeg would still own nothing.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /app geminivideo
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[${EXTRAS}]"

# Named volumes mounted here inherit this ownership on first use.
RUN mkdir -p /data/tmp /data/renders /data/previews /data/media /app/var \
 && chown -R geminivideo:geminivideo /data /app/var
USER geminivideo
# Containers log one JSON object per line (LOG_FORMAT=text for people reading a terminal).
ENV LOG_FORMAT=json

EXPOSE 8003 5555
CMD ["uvicorn", "geminivideo.api:app", "--host", "0.0.0.0", "--port", "8003"]
