"""Images in and out of the uint8 cache: decoding, augmentation, loaders, TTA views."""
