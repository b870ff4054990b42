"""Ad-platform adapters against a Graph API stand-in on loopback."""
