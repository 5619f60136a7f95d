"""The command-line side of distill: what only the commands need (Hydra config handling)."""
