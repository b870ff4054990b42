"""Video workers: render, preview, transcode, captions, cleanup and resource monitoring."""
