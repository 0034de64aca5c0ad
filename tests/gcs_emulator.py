"""The GCS emulator of the tests (gcp-storage-emulator), run as `python -m tests.gcs_emulator PORT
BUCKET`: in memory, on localhost, holding BUCKET.

Real GCS sends an object's generation with its content (the `x-goog-generation` header);
gcp-storage-emulator does not, and TensorStore's OCDBT, under Orbax, needs it to write a checkpoint's
manifest. This adds that header to the emulator's downloads, and changes nothing else.
"""

from __future__ import annotations

import sys

from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
    _download(request, response, storage, *args, **kwargs)
    if response.status in (200, 206):
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj["metageneration"])


def main(port: int, bucket: str) -> None:
    objects.download = _download_with_generation  # before the server module builds its routes
    from gcp_storage_emulator.server import create_server

    server = create_server("localhost", port, in_memory=True, default_bucket=bucket)
    server.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
