"""OME-Arrow's Arrow side: the record format, Arrow in and out, tables.

One job per module, lowest first (each imports only those above it, never
:mod:`ome_arrow_dask.core`):

* :mod:`~ome_arrow_dask.arrow.schema`: the struct types, metadata fields and their
  conversion to and from :class:`~ome_arrow_dask.meta.ImageMeta`;
* :mod:`~ome_arrow_dask.arrow.codec`: the record codec, pixels to records and back
  (byte, list and plane payloads);
* :mod:`~ome_arrow_dask.arrow.ingest`: Arrow data in (records, tensors, Pillow images)
  as image sources;
* :mod:`~ome_arrow_dask.arrow.export`: Arrow data out (tensor and record capsules);
* :mod:`~ome_arrow_dask.arrow.chunks`: an image's chunks as an Arrow stream;
* :mod:`~ome_arrow_dask.arrow.tables`: the image column of a table, row by row;
* :mod:`~ome_arrow_dask.arrow.files`: single-record Parquet files (``to_ome_parquet``).

The package imports none of them itself, so importing the schema stays cheap.
"""
