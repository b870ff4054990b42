"""ML workers: HubSpot webhooks, budget sampler, fatigue monitor, approval queue and winner index."""
