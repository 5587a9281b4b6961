"""The local build cache under CACHE_ROOT (default ~/.cache/dockyard, or --cache-dir):

  layers/   unpacked layer directories keyed by ChainID, used as read-only overlay lower layers (layers.py)
  steps/    step cache entries keyed by content-addressed step keys (keys.py, store.py)
  lock      held shared by every build and exclusively by `dockyard cache prune` (locking.py)
"""
