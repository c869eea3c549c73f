"""Training: the recipe (recipe.py), the run management around it (run.py), the measurements
(measure.py). `python -m scalinglab.train` is `scalinglab-train`."""
