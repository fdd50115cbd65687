"""lmfloss: imbalanced medical image classification with the LMF loss (Sadi et al.)."""

__version__ = "0.4.0.dev0"  # the changelog's 0.4 (unreleased); 0.1.0 until it said so
