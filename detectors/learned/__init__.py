"""Trained passive classifiers (scikit-learn shaped): ``spectral`` features + logistic regression,
and a ``cnn`` (timm ResNet from scratch) on native-resolution tiles. Both calibrated on held-out
data with an operating point at <= 1% false positives on real photos."""
from .base import CLASSIFIERS, ImageClassifier, load_classifier
from . import cnn, spectral, surprise  # noqa: F401  (registrations)


def create(family: str, **config) -> ImageClassifier:
    return CLASSIFIERS.create(family, **config)


__all__ = ["CLASSIFIERS", "ImageClassifier", "create", "load_classifier"]
