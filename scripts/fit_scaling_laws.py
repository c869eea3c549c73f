"""Thin wrapper: `python scripts/fit_scaling_laws.py SOURCE ...` is `scalinglab-fit SOURCE ...`."""

from scalinglab.fit.cli import main

if __name__ == "__main__":
    main()
