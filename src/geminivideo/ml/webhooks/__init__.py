"""HubSpot deal webhooks: signatures, event parsing, the outbox store, the pipeline, revenue and attribution."""
