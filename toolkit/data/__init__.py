"""Data loaders: built-in sets, image folders, numpy arrays, text files, and their splits."""

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
from .text import (
    BUILTIN_TEXT_SETS,
    MAX_TEXT_CHARS,
    TextData,
    TextSplits,
    load_text,
    prepare_texts,
    resolve_text_data,
    text_splits,
)

__all__ = [
    "BUILTIN_IMAGE_SETS",
    "BUILTIN_TEXT_SETS",
    "IMAGE_EXTENSIONS",
    "ImageData",
    "MAX_TEXT_CHARS",
    "Splits",
    "TextData",
    "TextSplits",
    "image_batch",
    "labelled_arrays",
    "load_digits",
    "load_image_folder",
    "load_splits",
    "load_text",
    "prepare_texts",
    "read_image",
    "resolve_image_data",
    "resolve_text_data",
    "split_indices",
    "text_splits",
]
