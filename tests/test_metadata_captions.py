"""Free text written by people is never evidence of a generator; structured generator fields are.

The caption matrix puts realistic news captions, credits and keywords that mention generator
words in ordinary senses (and some real photos *about* AI companies) into every free-text field
of EXIF, XMP, IPTC IIM and PNG text, then runs ``check``: none may be flagged.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image, IptcImagePlugin, PngImagePlugin

from detectors.metadata import MetadataDetector
from detectors.results import Label, Signal
from provenance.check import CheckConfig, Checker, NamedBytes
from provenance.c2pa.vocabulary import generator_named_in
from provenance.imageio import load_image

CAPTIONS = [
    "Planes taxi on Runway 4L at JFK International Airport",
    "A firefly at dusk over a meadow near Gatlinburg, Tennessee",
    "NASA Gemini capsule on display at the Kennedy Space Center",
    "Models walk the runway during Paris Fashion Week",
    "The ferry at midjourney between Dover and Calais",
    "Firefly Aerospace's Alpha rocket lifts off from Vandenberg",
    "Gemini North telescope at Maunakea, Hawaii",
    "Stable diffusion of ink in water during a physics demonstration at MIT",
    "A visitor photographs a poster about DALL-E at the Museum of Modern Art",
    "Midjourney founder David Holz speaks at a conference in San Francisco",
    "OpenAI CEO Sam Altman testifies before the Senate Judiciary Committee",
    "Adobe Firefly booth at Adobe MAX in Miami Beach",
    "Runway ML co-founder Cristóbal Valenzuela at the Sundance Film Festival",
    "Google Gemini logo displayed on a smartphone screen in Warsaw",
    "ComfyUI developers at a community meetup in Tokyo",
    "La imagen muestra el río Ebro desbordado en Zaragoza",
    "Magnetic flux measurement at the Wendelstein 7-X stellarator",
    "Leonardo da Vinci's Mona Lisa at the Louvre",
    "Kandinsky's Composition VII at the Tretyakov Gallery",
    "Sora, 7, plays in the snow in Sapporo",
    "A calligrapher paints the ideogram for water",
    "Steps: 20 volunteers carried sandbags up the levee",
    "A sampler quilt wins first prize at the county fair",
    "Seed vault entrance at Svalbard, Norway",
    "Prompt response by firefighters saved the library",
    "Newsroom workflow at the evening news desk",
    "Stable Diffusion lawsuit: Getty Images lawyers leave the High Court in London",
    "Panel on AI-generated images at the Reuters Institute, Oxford",
    "Workshop slide reads DigitalSourceType: trainedAlgorithmicMedia",
    "Nano Banana, a street food stall, in Bangkok's Chinatown",
    "Imagen Cup finalists pose in Seattle",
    "Playground v2 reopens in Prospect Park after renovation",
    "Bing Image Creator shown on a laptop at a school in Nairobi",
    "Fooocus? No: a photographer adjusts her focus ring at dawn",
]
KEYWORDS = ["runway", "firefly", "Gemini", "Midjourney", "Stable Diffusion", "DALL-E", "OpenAI", "generative AI"]
CREDITS = [("Firefly Photography Ltd", "© 2024 Runway Studios"), ("Gemini Okafor/Reuters", "Midjourney Press Agency"),
           ("Stable Diffusion Photo Desk", "Copyright OpenAI Newsroom")]


def _xmp(caption: str, creator: str, rights: str) -> bytes:
    keywords = "".join(f"<rdf:li>{k}</rdf:li>" for k in KEYWORDS)
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/" '
        f'photoshop:Headline="{caption}" photoshop:Credit="{creator}">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{caption}</rdf:li></rdf:Alt></dc:description>'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{caption}</rdf:li></rdf:Alt></dc:title>'
        f'<dc:subject><rdf:Bag>{keywords}</rdf:Bag></dc:subject>'
        f'<dc:creator><rdf:Seq><rdf:li>{creator}</rdf:li></rdf:Seq></dc:creator>'
        f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{rights}</rdf:li></rdf:Alt></dc:rights>'
        f'<Iptc4xmpCore:AltTextAccessibility><rdf:Alt><rdf:li xml:lang="x-default">{caption}</rdf:li></rdf:Alt>'
        '</Iptc4xmpCore:AltTextAccessibility>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>'
    ).encode("utf-8")


def _iim(caption: str, creator: str, rights: str) -> bytes:
    """An IPTC IIM record (caption, headline, object name, keywords, by-line, copyright) in APP13."""
    def dataset(number: int, text: str) -> bytes:
        value = text.encode("utf-8")
        return struct.pack(">BBBH", 0x1C, 2, number, len(value)) + value

    record = dataset(120, caption) + dataset(105, caption) + dataset(5, caption[:64])
    record += b"".join(dataset(25, k) for k in KEYWORDS) + dataset(80, creator) + dataset(116, rights)
    record += b"\0" * (len(record) % 2)
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(record)) + record
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def _pixels() -> Image.Image:
    return Image.fromarray(np.full((24, 24, 3), 110, np.uint8))


def _jpeg(exif: Image.Exif | None = None, xmp: bytes | None = None, app13: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"exif": exif.tobytes()} if exif is not None else {}
    if xmp:
        kwargs["xmp"] = xmp
    _pixels().save(buffer, "JPEG", **kwargs)
    data = buffer.getvalue()
    return data[:2] + app13 + data[2:] if app13 else data


def carriers(index: int, caption: str) -> dict[str, bytes]:
    creator, rights = CREDITS[index % len(CREDITS)]
    exif = Image.Exif()
    exif[0x010E] = caption  # ImageDescription
    exif[0x013B] = creator  # Artist
    exif[0x8298] = rights  # Copyright
    exif[0x9C9E] = "; ".join(KEYWORDS).encode("utf-16-le")  # XPKeywords
    exif[0x9C9B] = caption.encode("utf-16-le")  # XPTitle
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + caption.encode("ascii", "replace")  # UserComment
    png = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    for key, value in (("Title", caption), ("Description", caption), ("Comment", caption), ("Author", creator),
                       ("Copyright", rights), ("Keywords", ", ".join(KEYWORDS))):
        info.add_itxt(key, value)
    _pixels().save(png, "PNG", pnginfo=info)
    return {"exif": _jpeg(exif=exif), "xmp": _jpeg(xmp=_xmp(caption, creator, rights)),
            "iptc-iim": _jpeg(app13=_iim(caption, creator, rights)), "png-text": png.getvalue()}


MATRIX = [(f"{index:02d}-{carrier}", data, caption)
          for index, caption in enumerate(CAPTIONS) for carrier, data in carriers(index, caption).items()]


def test_the_matrix_is_real():
    """At least 30 captions, and the words are really in each file where a reader would find them."""
    assert len(CAPTIONS) >= 30 and len(MATRIX) == 4 * len(CAPTIONS)
    # Many captions name a generator exactly as a software field would: ignoring them is a choice.
    assert sum(generator_named_in(c) is not None for c in CAPTIONS) >= 10
    for name, data, caption in MATRIX:
        image = load_image(data)
        if name.endswith("exif"):
            assert image.exif[0x010E] == caption.encode("ascii", "replace").decode()  # EXIF ASCII
        elif name.endswith("xmp"):
            assert "dc:description" in image.xmp
        elif name.endswith("iptc-iim"):
            iim = IptcImagePlugin.getiptcinfo(Image.open(io.BytesIO(data)))
            assert iim[(2, 120)].decode() == caption and b"Midjourney" in b"".join(iim[(2, 25)])
        else:
            assert image.text_chunks["Description"] == caption


def test_caption_matrix_gives_no_false_flags():
    checker = Checker(CheckConfig(detectors=("c2pa", "metadata")))
    verdicts = checker.check([NamedBytes(name, data) for name, data, _ in MATRIX])
    flagged = [(v.source, v.label.value, v.reasons) for v in verdicts if v.label != Label.NO_EVIDENCE]
    assert flagged == []
    assert all(v.ai_involvement is None for v in verdicts)


# --- true positives: structured generator fields --------------------------------------------

A1111 = ("a lighthouse at dusk, oil painting\nNegative prompt: blurry\n"
         "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd_xl_base_1.0")
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
                           "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}}})
COMFY_WORKFLOW = json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []})
NOVELAI_COMMENT = json.dumps({"prompt": "a cat", "steps": 28, "sampler": "k_euler_ancestral", "seed": 7, "scale": 5})
INVOKEAI = json.dumps({"generation_mode": "txt2img", "model": {"name": "sd-1.5"}, "steps": 30, "cfg_scale": 7.5,
                       "scheduler": "euler"})


def _png(chunks: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    _pixels().save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def _exif_jpeg(tag: int, value, sub_ifd: bool = False) -> bytes:
    exif = Image.Exif()
    (exif.get_ifd(0x8769) if sub_ifd else exif)[tag] = value
    return _jpeg(exif=exif)


def _xmp_field(inner: str) -> bytes:
    return _jpeg(xmp=(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" {inner}/></rdf:RDF></x:xmpmeta>'
    ).encode())


DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRUE_POSITIVES = {
    "a1111 parameters": (_png({"parameters": A1111}), "AUTOMATIC1111", "ai_generated"),
    "comfyui prompt": (_png({"prompt": COMFY_PROMPT}), "ComfyUI (prompt graph)", "ai_generated"),
    "comfyui workflow": (_png({"workflow": COMFY_WORKFLOW}), "ComfyUI (workflow)", "ai_generated"),
    "novelai": (_png({"Software": "NovelAI", "Comment": NOVELAI_COMMENT,
                      "Source": "Stable Diffusion XL C1E1DE52"}), "NovelAI", "ai_generated"),
    "invokeai": (_png({"invokeai_metadata": INVOKEAI}), "InvokeAI", "ai_generated"),
    "exif software": (_exif_jpeg(0x0131, "Midjourney v6"), "EXIF Software (Midjourney)", "ai_generated"),
    "exif processing software": (_exif_jpeg(0x000B, "ComfyUI"), "EXIF ProcessingSoftware", "ai_generated"),
    "a1111 jpeg usercomment": (_exif_jpeg(0x9286, b"UNICODE\0" + A1111.encode("utf-16-be"), sub_ifd=True),
                               "EXIF UserComment", "ai_generated"),
    "xmp source type": (_xmp_field(f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"'),
                        "DigitalSourceType", "ai_generated"),
    "xmp source type element": (_jpeg(xmp=(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        f'<Iptc4xmpExt:DigitalSourceType>{DST}compositeWithTrainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>').encode()), "edited or composited", "ai_edited_or_composited"),
    "xmp creator tool": (_xmp_field('xmp:CreatorTool="Adobe Firefly"'), "xmp:CreatorTool", "ai_generated"),
}


@pytest.mark.parametrize("case", sorted(TRUE_POSITIVES))
def test_structured_generator_fields_are_found(case):
    data, expected, involvement = TRUE_POSITIVES[case]
    evidence = MetadataDetector().detect(load_image(data))
    assert evidence.signal == Signal.SYNTHETIC, evidence.summary
    assert expected in evidence.summary and evidence.ai_involvement == involvement
    verdict = Checker(CheckConfig(detectors=("c2pa", "metadata"))).check_one(data)
    assert (verdict.label, verdict.ai_involvement) == (Label.LIKELY_SYNTHETIC, involvement)


@pytest.mark.parametrize("software", ["Adobe Photoshop 25.0 (Windows)", "GIMP 2.10.34", "FIREFLY 8SE V1.2",
                                      "Gemini Camera 3.1", "Runway Capture 2.0", "Imagen AI 4.1", "Ver.1.00"])
def test_ordinary_software_fields_are_not_generators(software):
    assert MetadataDetector().detect(load_image(_exif_jpeg(0x0131, software))).signal == Signal.NONE


@pytest.mark.parametrize("chunks", [
    {"parameters": "Steps: see the caption"},  # a generator key without the generator's syntax
    {"prompt": "Press photo, caption: the mayor speaks"},
    {"workflow": '{"status": "approved by the photo desk"}'},
    {"Comment": '{"photographer": "A. Smith", "desk": "foreign"}'},
    {"Source": "Stable Diffusion lawsuit coverage"},
])
def test_generator_keys_without_generator_syntax_are_not_flagged(chunks):
    assert MetadataDetector().detect(load_image(_png(chunks))).signal == Signal.NONE


def test_xmp_parsing_is_bounded_and_refuses_entities():
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>')
    assert MetadataDetector().detect(load_image(_png({"XML:com.adobe.xmp": bomb}))).signal == Signal.NONE
    # a long malformed packet is scanned in linear time by the fallback (no backtracking blow-up)
    hostile = "<x:xmpmeta>" + "DigitalSourceType " * 50_000 + "=" + " " * 50_000 + "</x:xmpmeta>"
    assert MetadataDetector().detect(load_image(_png({"XML:com.adobe.xmp": hostile}))).signal == Signal.NONE
