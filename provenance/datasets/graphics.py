"""Computer-rendered graphics that no AI made, drawn here from a seed: the positive class of the
rendered-graphic gate (:mod:`provenance.rendered_gate`), and captioned photos, its hardest negatives.

- :func:`figure`: a matplotlib figure (line, bar, scatter, pie, histogram, stacked area, heatmap,
  filled contours, table, bullet slide, error bars) in one of a dozen styles and five font families;
- :func:`page`: a Pillow page of text lines, buttons and rules on a light or dark background, some
  with a gradient header (a screenshot or a slide);
- :func:`captioned`: a photo with a caption bar or text on it (a meme, a news card): still a
  photo, so the gate must not call it rendered;
- :func:`posted`: as a platform serves it (sometimes downscaled; PNG or JPEG q60-95).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

STYLES = ("default", "classic", "ggplot", "seaborn-v0_8-whitegrid", "seaborn-v0_8-darkgrid", "bmh",
          "fivethirtyeight", "dark_background", "grayscale", "Solarize_Light2", "seaborn-v0_8-pastel",
          "tableau-colorblind10")
FONT_FAMILIES = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "STIXGeneral")
WORDS = ("the council budget growth rate share revenue cases region north south east west total annual change "
         "index price survey votes").split()


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, n)).capitalize()


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))  # type: ignore[return-value]


def figure(rng: np.random.Generator) -> Image.Image:
    """One matplotlib chart, table or slide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context(STYLES[rng.integers(len(STYLES))]), \
            plt.rc_context({"font.family": FONT_FAMILIES[rng.integers(len(FONT_FAMILIES))]}):
        fig, ax = plt.subplots(figsize=(rng.uniform(4, 12), rng.uniform(3, 8)))
        kind = int(rng.integers(12))
        x = np.arange(int(rng.integers(5, 40)))
        if kind == 0:
            for _ in range(int(rng.integers(1, 5))):
                ax.plot(x, np.cumsum(rng.normal(size=len(x))), lw=rng.uniform(0.8, 3), marker=rng.choice(["", "o", "s", "^"]))
        elif kind == 1:
            ax.bar(x[:12], rng.uniform(1, 10, len(x[:12])), color=rng.uniform(0, 1, 3))
        elif kind == 2:
            ax.barh(x[:10], rng.uniform(1, 10, len(x[:10])))
        elif kind == 3:
            ax.scatter(rng.normal(size=300), rng.normal(size=300), s=rng.uniform(5, 60), alpha=rng.uniform(0.3, 1))
        elif kind == 4:
            ax.pie(rng.uniform(1, 5, int(rng.integers(3, 8))), autopct="%1.0f%%")
        elif kind == 5:
            ax.hist(rng.normal(size=2000), bins=int(rng.integers(10, 60)))
        elif kind == 6:
            ax.stackplot(x, *[rng.uniform(1, 3, len(x)) for _ in range(3)])
        elif kind == 7:
            shown = ax.imshow(rng.uniform(size=(int(rng.integers(4, 15)), int(rng.integers(4, 15)))),
                              cmap=str(rng.choice(["viridis", "Blues", "RdBu", "magma"])))
            fig.colorbar(shown)
        elif kind == 8:
            grid = np.linspace(-3, 3, 200)
            gx, gy = np.meshgrid(grid, grid)
            ax.contourf(gx, gy, np.sin(gx * rng.uniform(0.5, 2)) * np.cos(gy), levels=int(rng.integers(5, 20)),
                        cmap=str(rng.choice(["viridis", "coolwarm", "plasma"])))
        elif kind == 9:
            ax.axis("off")
            cells = [[f"{v:.1f}" for v in rng.uniform(0, 100, 4)] for _ in range(int(rng.integers(3, 12)))]
            ax.table(cellText=cells, colLabels=[_words(rng, 1) for _ in range(4)], loc="center")
        elif kind == 10:
            ax.axis("off")
            for i in range(int(rng.integers(3, 9))):
                ax.text(0.05, 0.9 - i * 0.1, "\u2022 " + _words(rng, int(rng.integers(3, 9))),
                        fontsize=rng.uniform(10, 24), transform=ax.transAxes)
        else:
            ax.errorbar(x, rng.normal(size=len(x)), yerr=rng.uniform(0.1, 1, len(x)), fmt="o-", capsize=3)
        if kind not in (9, 10):
            ax.set_title(_words(rng, int(rng.integers(2, 7))), fontsize=rng.uniform(10, 20))
            ax.set_xlabel(_words(rng, 2))
            ax.set_ylabel(_words(rng, 2))
            if rng.random() < 0.4:
                ax.legend([_words(rng, 1) for _ in range(3)])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=float(rng.uniform(60, 160)),
                    bbox_inches="tight" if rng.random() < 0.5 else None)
        plt.close(fig)
    return Image.open(buffer).convert("RGB")


_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf")


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font that matplotlib ships (so every machine with the package has it)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    try:
        return ImageFont.truetype(str(folder / _FONT_FILES[rng.integers(len(_FONT_FILES))]), size)
    except OSError:
        return ImageFont.load_default(size=size)


def page(rng: np.random.Generator) -> Image.Image:
    """A screenshot-like page: text lines, buttons and rules, sometimes under a gradient header."""
    width, height = int(rng.integers(500, 1600)), int(rng.integers(400, 1000))
    light = rng.random() < 0.7
    background = _colour(rng, 230, 256) if light else _colour(rng, 0, 50)
    ink = (20, 20, 20) if light else (230, 230, 230)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        top, bottom, rows = _colour(rng), _colour(rng), int(rng.integers(40, 120))
        for y in range(rows):
            draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * y / rows) for a, b in zip(top, bottom)))
    y = int(rng.integers(60, 140))
    while y < height - 40:
        choice, size = rng.random(), int(rng.integers(11, 30))
        if choice < 0.6:
            draw.text((int(rng.integers(10, 60)), y), _words(rng, int(rng.integers(3, 12))), fill=ink, font=_font(rng, size))
            y += size + int(rng.integers(4, 20))
        elif choice < 0.8:
            right = 20 + int(rng.integers(60, 240))
            draw.rounded_rectangle((20, y, right, y + 36), radius=int(rng.integers(0, 12)), fill=_colour(rng))
            draw.text((30, y + 8), _words(rng, 2), fill=(255, 255, 255), font=_font(rng, 16))
            y += 50
        else:
            draw.line([(10, y), (width - 10, y)], fill=_colour(rng, 150, 220), width=1)
            y += 12
    return image


def captioned(rng: np.random.Generator, picture: Image.Image) -> Image.Image:
    """``picture`` with a caption bar above or below it, or a caption on it."""
    width, height = picture.size
    font = _font(rng, max(12, int(width * rng.uniform(0.03, 0.07))))
    text = _words(rng, int(rng.integers(3, 8))).upper()
    if rng.random() < 0.5:
        bar, above = int(height * rng.uniform(0.08, 0.3)), rng.random() < 0.5
        white = rng.random() < 0.7
        image = Image.new("RGB", (width, height + bar), "white" if white else "black")
        image.paste(picture, (0, bar if above else 0))
        fill, top = (0, 0, 0) if white else (255, 255, 255), 5 if above else height + 5
    else:
        image, fill, top = picture.copy(), (255, 255, 255) if rng.random() < 0.5 else (0, 0, 0), int(height * rng.uniform(0.02, 0.8))
    ImageDraw.Draw(image).text((int(width * 0.05), top), text, fill=fill, font=font,
                               stroke_width=int(rng.integers(0, 3)), stroke_fill=(0, 0, 0))
    return image


def posted(rng: np.random.Generator, image: Image.Image) -> tuple[bytes, str]:
    """(file bytes, suffix) as a platform might serve ``image``."""
    if rng.random() < 0.3:
        scale = rng.uniform(0.5, 0.95)
        image = image.resize((max(64, int(image.width * scale)), max(64, int(image.height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if rng.random() < 0.45:
        image.save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    quality = int(rng.integers(60, 96))
    image.save(buffer, "JPEG", quality=quality, subsampling=0 if quality >= 90 and rng.random() < 0.5 else 2)
    return buffer.getvalue(), ".jpg"


def rendered(rng: np.random.Generator, index: int) -> tuple[str, Image.Image]:
    """(kind, image): two matplotlib figures for every page."""
    return ("page", page(rng)) if index % 3 == 0 else ("figure", figure(rng))
