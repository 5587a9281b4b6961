"""CI adapter (see the issue tracker: a later issue fills this)."""
