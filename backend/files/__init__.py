"""Files: tables in and out, of any size.

* :mod:`backend.files.io` — reading an upload (encodings, separators, columns), CSV downloads;
* :mod:`backend.files.stream` — chunked reading with exact positions, resumable writers, progress manifests;
* :mod:`backend.files.batch` — :class:`~backend.files.batch.FileJob`: ``score`` over a file, resumable;
* :mod:`backend.files.embed` — ``embed``: a corpus's vectors in Parquet, and reading them back;
* :mod:`backend.files.index` — nearest-neighbour indexes over embedded corpora (exact or faiss IVF), verified on load;
* :mod:`backend.files.ray_engine` — the same file jobs on Ray.
"""
