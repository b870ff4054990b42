"""Ad-platform adapters: daily metrics in, approved changes out.

One module per platform (``meta.py`` today; TikTok or Google Ads would be siblings) implementing the small
``AdPlatform`` interface of ``base.py``; ``sync.py`` imports what an adapter fetches through the metrics import,
``executor.py`` turns an adapter into the approval executor's client (or keeps record-only mode).
"""
