"""Data loaders: built-in offline sets, image folders, numpy arrays, and their splits."""

from .images import (
    BUILTIN_IMAGE_SETS,
    IMAGE_EXTENSIONS,
    ImageData,
    Splits,
    image_batch,
    labelled_arrays,
    load_digits,
    load_image_folder,
    load_splits,
    read_image,
    resolve_image_data,
    split_indices,
)

__all__ = [
    "BUILTIN_IMAGE_SETS",
    "IMAGE_EXTENSIONS",
    "ImageData",
    "Splits",
    "image_batch",
    "labelled_arrays",
    "load_digits",
    "load_image_folder",
    "load_splits",
    "read_image",
    "resolve_image_data",
    "split_indices",
]
