"""What a model trains on: images (a folder of the user's or a built-in set) and 2D points.

- :mod:`.source`: one ``load_source`` for every source name (images or points);
- :mod:`.protocol`: what a dataset offers by kind (``ImageData``, ``PointData``);
- :mod:`.labels`: class labels (``labels``, ``class_names``): their checks, counts and sources;
- :mod:`.images`: image datasets in memory or streamed from disk, and the DatasetReport;
- :mod:`.files`: decoding one image file (every format Pillow reads, EXIF orientation, modes);
- :mod:`.builtin`: the built-in image sets, generated and cached; :mod:`.digits`, :mod:`.shapes`;
- :mod:`.points`: 2D point sets (built-in or CSV) and their distances; :mod:`.toy2d`: the generators."""
