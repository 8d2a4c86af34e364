"""Many images in one run (provenance.images): the set's machinery, around the one-image path.

`run.py` runs each image's pipeline (steps/pipeline.py) on a bounded pool of threads;
`entries.py` reads the set; `bake.py` builds the set in one `docker buildx bake`; `meeting.py`
lets the images' cosign calls meet in one; `tools.py` gives each image its tools (shared where
sharing saves work); `outputs.py` and `log.py` keep each image's part of the outputs and the log.
The one-image path knows none of this: it calls its `Tools`, which an image's `ImageTools`
answer for the set.
"""
