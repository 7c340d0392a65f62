"""Prefix -> smoke-checked tarball, Dockerfile, OCI image and SBOM."""
