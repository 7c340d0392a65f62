"""Over time and across environments: nightly, promotion, rollback, gc, CI, status."""
