"""Image files: reading them (decoders, EXIF, ICC, CMYK) and writing them."""
