"""The config-side steps of distill's commands (Hydra configs in, library calls out)."""
