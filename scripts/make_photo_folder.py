"""Writes a folder of real photos to try `keras-tinynet train --dataset folder:DIR` on, with no download:

    python scripts/make_photo_folder.py photos [--train 16] [--val 6] [--size 40] [--seed 0]

photos/train/<class>/*.jpg and photos/val/<class>/*.jpg, 12 classes: crops of the photos and textures that
ship with scikit-image and scikit-learn, one class per image. Train crops come from the left 65% of each image
and validation crops from the rest, so validation asks for unseen parts of the scene. The tests use it too.
Needs scikit-image (the `parity` extra, or pip install scikit-image).
"""

import argparse
import pathlib
import sys

import numpy as np
from PIL import Image


def source_photos() -> dict[str, np.ndarray]:
    """{class name: RGB uint8 photo}: 12 real photos and textures, no download."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    photos = {
        "astronaut": data.astronaut(),
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "galaxies": data.hubble_deep_field(),
        "tissue": data.immunohistochemistry(),
        "retina": data.retina(),
        "temple": china,
        "flower": flower,
        "brick": data.brick(),
        "grass": data.grass(),
        "gravel": data.gravel(),
    }
    return {name: np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3] for name, p in photos.items()}


def write_photo_folder(root, train: int = 16, val: int = 6, size: int = 40, seed: int = 0):
    """`root/train/<class>/*.jpg` and `root/val/<class>/*.jpg`: crops of 20-45% of each photo's short side,
    resized to `size`; the same arguments write the same files."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    for name, photo in source_photos().items():
        height, width = photo.shape[:2]
        cut = int(width * 0.65)
        for split, count, (left, right) in (("train", train, (0, cut)), ("val", val, (cut, width))):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                side = min(int(min(height, width) * rng.uniform(0.2, 0.45)), right - left, height)
                x, y = int(rng.integers(left, right - side + 1)), int(rng.integers(0, height - side + 1))
                crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.BICUBIC)
                crop.save(folder / f"{index:03d}.jpg", quality=92)
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--train", type=int, default=16, help="training crops per class")
    parser.add_argument("--val", type=int, default=6, help="validation crops per class")
    parser.add_argument("--size", type=int, default=40, help="crop size in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(sys.argv[1:])
    write_photo_folder(args.output_dir, args.train, args.val, args.size, args.seed)
    print(f"wrote {args.output_dir}: 12 classes, {args.train} train and {args.val} val images each, {args.size} px")
