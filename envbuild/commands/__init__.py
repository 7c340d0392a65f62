"""What each doit action runs: the per-environment stages and the other commands."""
