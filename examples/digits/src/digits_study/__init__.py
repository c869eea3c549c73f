"""A user's own study: a ResNet-style CNN (model.py) on scikit-learn's digits (data.py)."""
