"""lmfloss: imbalanced medical image classification with the LMF loss (Sadi et al.)."""

__version__ = "0.1.0"
