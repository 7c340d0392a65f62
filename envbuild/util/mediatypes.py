"""Every media type envbuild writes or reads, in one place: OCI images and indexes, Docker's
manifests, and the artifacts attached to an image as referrers.

Sources: the OCI image spec (https://github.com/opencontainers/image-spec/blob/main/media-types.md,
``manifest.md`` for ``application/vnd.oci.empty.v1+json``), Docker's image manifest v2 schema 2
(https://distribution.github.io/distribution/spec/manifest-v2-2/), in-toto's attestation
framework and DSSE (https://github.com/in-toto/attestation/blob/main/spec/v1/envelope.md),
CycloneDX (https://cyclonedx.org/specification/overview/). The conda-pack and envbuild types
are ours (``vnd.`` tree, RFC 6838).
"""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"  # the config of an artifact manifest
# what a base made by docker (skopeo copy docker-daemon:..., docker save) carries
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)

ENV_ARTIFACT = "application/vnd.envbuild.environment.v1"  # artifactType of the tarball
SBOM_ARTIFACT = "application/vnd.cyclonedx+json"  # artifactType and layer of the SBOM
IN_TOTO = "application/vnd.in-toto+json"  # DSSE payloadType, and the attestation's artifactType
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"  # the attestation's layer
TARBALL_TYPES = {  # the tarball's layer, by pack format
    "tar.zst": "application/vnd.conda-pack.tar+zstd",
    "tar.gz": "application/vnd.conda-pack.tar+gzip",
}
