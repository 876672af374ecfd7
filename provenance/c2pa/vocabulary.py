"""IPTC digital source types (the ``digitalSourceType`` of a C2PA action) and how we group them.

https://cv.iptc.org/newscodes/digitalsourcetype/ ; the names are the ones c2pa-rs 0.91.3 knows.
"""
from __future__ import annotations

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"

SOURCE_TYPES = (
    "digitalCapture",
    "computationalCapture",
    "negativeFilm",
    "positiveFilm",
    "print",
    "minorHumanEdits",
    "humanEdits",
    "compositeCapture",
    "algorithmicallyEnhanced",
    "digitalCreation",
    "dataDrivenMedia",
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
    "screenCapture",
    "virtualRecording",
    "composite",
)

# Generative AI in IPTC's own words: made (wholly or in part) by a model trained on sampled content.
GENERATIVE_AI = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})

# Synthetic = the pixels were produced by an algorithm rather than captured or drawn. It adds
# purely algorithmic media (procedural, no training data) and composites with a synthetic
# element. Not included: algorithmicallyEnhanced (a capture corrected by an algorithm),
# digitalCreation (drawn by a human with software), dataDrivenMedia (charts, visualisations).
SYNTHETIC = GENERATIVE_AI | {"algorithmicMedia", "compositeSynthetic"}

# A declared camera or scanner origin. compositeCapture (a montage of captures), screenCapture
# and virtualRecording are left out: they say nothing reliable about what the pixels depict.
CAPTURE = frozenset({"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"})


def source_type_uri(name: str) -> str:
    if name not in SOURCE_TYPES:
        raise ValueError(f"unknown digital source type {name!r}; known: {', '.join(SOURCE_TYPES)}")
    return IPTC_PREFIX + name


def source_type_name(uri: str | None) -> str | None:
    """The IPTC term of ``uri`` (http or https form), or the URI unchanged if it is not IPTC's."""
    if not uri:
        return None
    for prefix in (IPTC_PREFIX, IPTC_PREFIX.replace("http://", "https://", 1)):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    return uri


# Pillow names some files by a sub-format c2pa does not list: a JPEG with an embedded preview
# (most camera JPEGs) opens as MPO. c2pa reads and signs them as what they are on disk.
C2PA_MIME_ALIASES = {"image/mpo": "image/jpeg"}


def c2pa_mime_type(mime_type: str) -> str:
    return C2PA_MIME_ALIASES.get(mime_type, mime_type)
