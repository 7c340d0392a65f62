"""Recipe -> lockfile: solving with py-rattler, conda-lock v1 files, diffs, the epoch."""
