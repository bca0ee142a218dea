"""Probabilities from a trained model: batched TTA prediction; never imports training/."""
