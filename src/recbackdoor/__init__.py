"""recbackdoor: attack, defend and audit recommender systems against backdoors."""

__version__ = "0.1.0"
