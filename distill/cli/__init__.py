"""What the commands share; the only library code that imports Hydra (console, key checks)."""
