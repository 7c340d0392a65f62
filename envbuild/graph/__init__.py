"""The doit task graph and its up-to-date decisions (small stamps, no heavy imports)."""
