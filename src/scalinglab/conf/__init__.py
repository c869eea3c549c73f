"""The Hydra configs, shipped inside the package (a package so Hydra can find them)."""
