"""Budget decisions: the Thompson sampler, the fatigue monitor, the approval queue and ad histories."""
