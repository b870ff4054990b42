"""Media as URIs: S3-compatible object storage for inputs, outputs and the winner index (DESIGN §9).

- ``uri``: ``s3://bucket/key`` parsing and the STORAGE_BUCKETS allow-list;
- ``client``: the process's boto3 client (SigV4, path-style, bounded retries);
- ``errors``: store failures as permanent or transient errors naming the URI or bucket;
- ``transfer``: verified download, upload, presign, multipart abort;
- ``staging``: a video task's s3:// inputs in its scratch folder; ``outputs``: publishing its results;
- ``housekeeping``: a host's stale multipart uploads; ``index``: the winner index's versioned objects.

Nothing connects at import; the client is built on first use.
"""
