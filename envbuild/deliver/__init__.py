"""To and from OCI registries: publish, pull, a base image by digest."""
