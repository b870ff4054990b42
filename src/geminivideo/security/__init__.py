"""Security building blocks shared by the API, the CLI and the workers: API keys with scopes, rate
limits, idempotent submission, credential masking and resource limits for media child processes."""
