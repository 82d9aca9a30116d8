"""Data layer: readers for every on-disk format, the image decoder, datasets, augmentation and data checks."""
