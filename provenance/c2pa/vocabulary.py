"""IPTC digital source types (the ``digitalSourceType`` of a C2PA action or of XMP) and what each
means for a photo desk.

https://cv.iptc.org/newscodes/digitalsourcetype/ ; the names are the ones c2pa-rs 0.91.3 knows,
plus the retired ``digitalArt`` and C2PA's own ``trainedAlgorithmicData`` and ``empty``, which
real files still carry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_PREFIX = "http://c2pa.org/digitalsourcetype/"

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
GENERATIVE_AI = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "trainedAlgorithmicData"})

# Synthetic = the pixels were produced by an algorithm rather than captured or drawn. It adds
# purely algorithmic media (procedural, no training data) and composites with a synthetic
# element. Not included: algorithmicallyEnhanced (a capture corrected by an algorithm),
# digitalCreation (drawn by a human with software), dataDrivenMedia (charts, visualisations).
SYNTHETIC = GENERATIVE_AI | {"algorithmicMedia", "compositeSynthetic"}

# A declared camera or scanner origin. compositeCapture (a montage of captures), screenCapture
# and virtualRecording are left out: they say nothing reliable about what the pixels depict.
CAPTURE = frozenset({"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"})


# Generative tools as they name themselves in *software* fields (EXIF Software, XMP CreatorTool, a
# C2PA softwareAgent or claim generator), matched as whole tokens. Never applied to captions or
# other free text. Names that are also ordinary words or other products appear only in their
# qualified form: a bare "Firefly" is also an action camera, "Gemini" a space capsule, "Runway" an
# airport surface, "Imagen" a photo-editing service.
GENERATOR_SOFTWARE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"Midjourney|DALL[-\u00b7 ]?E(?: ?\d)?|Stable[ _-]?Diffusion|SDXL|NovelAI|ComfyUI|AUTOMATIC1111|"
    r"stable-diffusion-webui|InvokeAI|Fooocus|Adobe[ _]Firefly|Google[ _]Imagen|Google[ _]Gemini|"
    r"Gemini[ _-]\d[\w.-]*image[\w.-]*|Nano[ _]Banana|Leonardo\.?Ai|Ideogram|FLUX\.\d|Black Forest Labs|"
    r"Bing Image Creator|Image Creator from Microsoft Designer|DreamStudio|Craiyon|NightCafe|Kandinsky|"
    r"DeepFloyd|Playground v\d|GPT-4o|gpt-image-\d|ChatGPT|OpenAI|Runway ?ML|Runway Gen-\d|Google[ _]Veo"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def generator_named_in(software: str | None) -> str | None:
    """The generator a software field names, if it names one."""
    if not software:
        return None
    match = GENERATOR_SOFTWARE.search(software[:1000])
    return match.group(1) if match else None


class AiInvolvement:
    """Values of the ``ai_involvement`` field: how AI took part in making the content, as declared."""

    GENERATED = "ai_generated"  # wholly made by a generative model (or derived from such content)
    EDITED = "ai_edited_or_composited"  # real or human-made content with AI-generated parts
    ALGORITHMIC = "algorithmic_non_ai"  # made by an algorithm without a trained model
    ENHANCED = "algorithmically_enhanced"  # a capture corrected or enhanced by an algorithm
    CAPTURE = "capture"  # camera, scanner or film, possibly with minor processing
    HUMAN_EDITED = "human_edited"
    COMPOSITE = "composite"  # a montage of elements, none declared synthetic
    SCREEN_CAPTURE = "screen_capture"
    VIRTUAL_RECORDING = "virtual_recording"
    DIGITAL_CREATION = "digital_creation"  # drawn or built by a person with non-generative software
    DATA_DRIVEN = "data_driven"
    BLANK = "blank"
    UNKNOWN = "unknown"  # a source type we do not recognise


# Most AI involvement first: a file that declares several origins is described by the first.
INVOLVEMENT_ORDER = (
    AiInvolvement.GENERATED, AiInvolvement.EDITED, AiInvolvement.ALGORITHMIC, AiInvolvement.ENHANCED,
    AiInvolvement.COMPOSITE, AiInvolvement.HUMAN_EDITED, AiInvolvement.DATA_DRIVEN,
    AiInvolvement.VIRTUAL_RECORDING, AiInvolvement.SCREEN_CAPTURE, AiInvolvement.DIGITAL_CREATION,
    AiInvolvement.CAPTURE, AiInvolvement.BLANK, AiInvolvement.UNKNOWN,
)


@dataclass(frozen=True)
class SourceTypeInfo:
    name: str
    involvement: str  # an AiInvolvement value
    meaning: str  # what it tells a photo desk


_INFO = [
    SourceTypeInfo("trainedAlgorithmicMedia", AiInvolvement.GENERATED,
                   "generated by AI: made by a model trained on sampled content"),
    SourceTypeInfo("trainedAlgorithmicData", AiInvolvement.GENERATED, "data generated by AI"),
    SourceTypeInfo("compositeWithTrainedAlgorithmicMedia", AiInvolvement.EDITED,
                   "edited or composited with AI: part of the content was generated by AI "
                   "(e.g. generative fill, an AI element placed in a photo)"),
    SourceTypeInfo("algorithmicMedia", AiInvolvement.ALGORITHMIC,
                   "algorithmic media without AI: made by software from rules, not from training data"),
    SourceTypeInfo("compositeSynthetic", AiInvolvement.ALGORITHMIC, "a composite that includes synthetic elements"),
    SourceTypeInfo("algorithmicallyEnhanced", AiInvolvement.ENHANCED,
                   "a capture enhanced by an algorithm (e.g. denoising, sharpening); the scene was captured"),
    SourceTypeInfo("digitalCapture", AiInvolvement.CAPTURE, "captured from real life by a digital camera"),
    SourceTypeInfo("computationalCapture", AiInvolvement.CAPTURE,
                   "captured from real life with in-camera computational processing (e.g. a phone)"),
    SourceTypeInfo("negativeFilm", AiInvolvement.CAPTURE, "scanned from a film negative"),
    SourceTypeInfo("positiveFilm", AiInvolvement.CAPTURE, "scanned from a film positive (slide)"),
    SourceTypeInfo("print", AiInvolvement.CAPTURE, "scanned from a print"),
    SourceTypeInfo("minorHumanEdits", AiInvolvement.HUMAN_EDITED, "a capture with minor human edits"),
    SourceTypeInfo("humanEdits", AiInvolvement.HUMAN_EDITED, "edited by a person"),
    SourceTypeInfo("compositeCapture", AiInvolvement.COMPOSITE, "a composite of several captures"),
    SourceTypeInfo("composite", AiInvolvement.COMPOSITE, "a composite of elements"),
    SourceTypeInfo("screenCapture", AiInvolvement.SCREEN_CAPTURE, "a screenshot or screen recording"),
    SourceTypeInfo("virtualRecording", AiInvolvement.VIRTUAL_RECORDING,
                   "a recording of a virtual scene (e.g. a video game)"),
    SourceTypeInfo("digitalCreation", AiInvolvement.DIGITAL_CREATION,
                   "made by a person with digital tools, without generative AI"),
    SourceTypeInfo("digitalArt", AiInvolvement.DIGITAL_CREATION,
                   "made by a person with digital tools, without generative AI (retired term)"),
    SourceTypeInfo("dataDrivenMedia", AiInvolvement.DATA_DRIVEN, "a rendering of data (a chart, a visualisation)"),
    SourceTypeInfo("empty", AiInvolvement.BLANK, "a blank canvas"),
]
SOURCE_TYPE_INFO: dict[str, SourceTypeInfo] = {info.name: info for info in _INFO}


def describe_source_type(name: str) -> SourceTypeInfo:
    return SOURCE_TYPE_INFO.get(name) or SourceTypeInfo(name, AiInvolvement.UNKNOWN, f"unrecognised source type {name}")


def most_involved(involvements) -> str | None:
    """The involvement with most AI among ``involvements`` (None when there are none)."""
    present = set(involvements) - {None}
    return next((value for value in INVOLVEMENT_ORDER if value in present), None)


def source_type_uri(name: str) -> str:
    if name not in SOURCE_TYPES:
        raise ValueError(f"unknown digital source type {name!r}; known: {', '.join(SOURCE_TYPES)}")
    return IPTC_PREFIX + name


def source_type_name(uri: str | None) -> str | None:
    """The IPTC term of ``uri`` (http or https form), or the URI unchanged if it is not IPTC's."""
    if not uri:
        return None
    for prefix in (IPTC_PREFIX, C2PA_PREFIX):
        for form in (prefix, prefix.replace("http://", "https://", 1)):
            if uri.startswith(form):
                return uri[len(form):]
    return uri


# Pillow names some files by a sub-format c2pa does not list: a JPEG with an embedded preview
# (most camera JPEGs) opens as MPO. c2pa reads and signs them as what they are on disk.
C2PA_MIME_ALIASES = {"image/mpo": "image/jpeg"}


def c2pa_mime_type(mime_type: str) -> str:
    return C2PA_MIME_ALIASES.get(mime_type, mime_type)
