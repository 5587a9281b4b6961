"""Software bills of materials of images.

The module API the CLI (`dockyard sbom`) and the build's attestations use:

* `catalog.catalog(image, blobs, name=, digest=) -> model.Catalog`: the packages of an image, read from its
  layers (layers.py streams them; dpkg.py, apk.py, rpmdb.py, pythondist.py, npm.py, osrelease.py read the
  databases);
* `spdx.spdx_document(catalog, created=) -> dict` (SPDX 2.3 JSON) and
  `cyclonedx.cyclonedx_document(catalog, created=) -> dict` (CycloneDX 1.5 JSON);
* `document.creation_time(environ)`: SOURCE_DATE_EPOCH, else now;
* `source.open_image(SOURCE, platform=, environ=)`: a registry reference, an OCI layout or a docker archive.
"""
