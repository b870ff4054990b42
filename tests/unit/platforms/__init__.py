"""Pure parts of the ad-platform adapters."""
