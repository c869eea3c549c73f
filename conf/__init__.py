"""The Hydra configs. Installed as the package `scalinglab.conf` (src/scalinglab/conf links
here; see pyproject.toml): `scalinglab-train` reads them from it (`config_path="../conf"` from
scalinglab.train, i.e. `pkg://scalinglab.conf`), and so can `initialize_config_module`."""
