"""A corpus of public images from git snapshots: a pinned index, and a rebuild that checks every hash.

The images themselves are never committed (size, mixed licences). What is committed is the index
(``corpus_index.csv`` beside this module): one row per image with the repository, commit, path,
SHA-256, class, generator or real source, family, licence, size and format. ``rebuild`` reads the
blobs straight out of local bare snapshots (``MIRROR/owner+name/repo``, as the fetch tool leaves
them), checks each hash and writes::

    OUT/real/<source>/<owner+name>/<path>          real photos, one folder per source
    OUT/synthetic/<generator>/<owner+name>/<path>  generated images, one folder per generator

so that ``provenance dataset build --synthetic NAME=OUT/synthetic/NAME --real NAME=OUT/real/NAME``
can take them. ``scan`` is the maintainer's side: it applies :data:`RULES` to the snapshots, drops
greyscale images, files listed as reserved, exact copies (same SHA-256) and perceptual near-copies,
and returns the rows that become the index.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from PIL import Image

INDEX_PATH = Path(__file__).with_name("corpus_index.csv")
LISTS_DIR = Path(__file__).with_name("corpus_lists")
IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|webp|tiff?|bmp)$", re.IGNORECASE)
# Near-copies: Kodak, BSD and Set14 live in dozens of repositories, re-encoded.
NEAR_COPY_BITS = 4


@dataclass(frozen=True)
class Rule:
    """Which files of a repository are taken, and what they are."""
    repo: str
    pattern: str  # regex on the path; named group ``prefix`` may select a generator from PREFIXES
    label: str  # real | synthetic
    source: str  # generator (synthetic) or real source name
    family: str  # generator family, held out together; for reals the kind of photo
    licence: str
    commercial: str  # yes | no | unknown
    exclude: str = r"$^"
    # generator, family per ``prefix`` match; None means DCSAN_PREFIXES (dcsan/imagen's model codes)
    prefixes: Mapping[str, tuple[str, str]] | None = None
    # also take files that earlier commits added and later ones removed (pinned at the adding commit)
    history: bool = False
    # a maintainer's curated list in corpus_lists/ (one path per line): only these paths are taken
    # (``keep_list``), or these are left out (``drop_list``); for choices no pattern can express
    # (which camera files are unedited originals, which outputs are screenshots)
    keep_list: str | None = None
    drop_list: str | None = None

    def listed(self, name: str | None) -> frozenset[str] | None:
        if name is None:
            return None
        return frozenset(line.strip() for line in (LISTS_DIR / name).read_text().splitlines() if line.strip())


# dcsan/imagen names each render by its model prefix (data/configs.py there).
DCSAN_PREFIXES = {
    "ldif": ("latent-diffusion", "latent-diffusion"),
    "glid": ("glid-3", "latent-diffusion"),
    "mdif": ("majesty-diffusion", "latent-diffusion"),
    "lmdv": ("latent-diffusion-v", "latent-diffusion"),
    "disco": ("disco-diffusion", "guided-diffusion"),
    "dmin": ("dalle-mini", "vq-autoregressive"),
    "simu": ("simulacra-vqgan", "vq-autoregressive"),
    "pixray": ("pixray", "vq-autoregressive"),
    "midj": ("midjourney-2022", "midjourney"),
    "stab": ("stable-diffusion-1", "stable-diffusion-1"),
    "dal": ("dalle-2", "dalle-2"),
}



def _generator_testing_prefixes() -> dict[str, tuple[str, str]]:
    """AI-Image-Gen/generator-testing names each render RUN-JOB-ID.jpg; JOB indexes that run's models.json.

    Runs 1-12 rendered SDXL-turbo, SD 2.1, SD 1.5; runs 15-23 added SDXL base after SDXL-turbo. Every
    render was then upscaled x3 by Real-ESRGAN (its workflow), so they form one family held out together.
    """
    three = ("sdxl-turbo", "sd-2.1", "sd-1.5")
    four = ("sdxl-turbo", "sdxl", "sd-2.1", "sd-1.5")
    table = {}
    for run in range(1, 24):
        for job, model in enumerate(three if run <= 12 else four):
            table[f"{run}-{job}"] = (f"{model}+esrgan-x3", "esrgan-upscaled-sd")
    return table


# ComfyUI_examples: one file per example; the checkpoint each used is in the PNG's embedded workflow.
COMFY_EXAMPLES = {
    "flux/flux_dev_example": ("flux-1", "flux"), "flux/flux_dev_checkpoint_example": ("flux-1", "flux"),
    "flux/girl_in_field": ("flux-1", "flux"), "flux/flux_schnell_example": ("flux-1", "flux"),
    "flux/flux_schnell_checkpoint_example": ("flux-1", "flux"), "flux/flux_canny_model_example": ("flux-1", "flux"),
    "flux/flux_controlnet_example": ("flux-1", "flux"), "flux/flux_redux_model_example": ("flux-1", "flux"),
    "flux/flux_kontext_example": ("flux-1", "flux"), "flux2/flux2_example": ("flux-2", "flux"),
    "chroma/chroma_example": ("chroma", "flux"), "chroma/fennec_girl_flowers": ("chroma", "flux"),
    "chroma/fennec_girl_hug": ("chroma", "flux"), "chroma/fennec_girl_sing": ("chroma", "flux"),
    "sdxl/sdxl_simple_example": ("sdxl", "sdxl-sd3"), "sdxl/sdxl_refiner_prompt_example": ("sdxl", "sdxl-sd3"),
    "sdturbo/sdxlturbo_example": ("sdxl", "sdxl-sd3"), "lcm/lcm_basic_example": ("sdxl", "sdxl-sd3"),
    "sd3/sd3_simple_example": ("sd3", "sdxl-sd3"), "sd3/sd3_text_encoders_example": ("sd3", "sdxl-sd3"),
    "sd3/sd3_anime_example": ("sd3", "sdxl-sd3"), "sd3/sd3_controlnet_example": ("sd3", "sdxl-sd3"),
    "sd3/sd3.5_simple_example": ("sd3.5", "sdxl-sd3"), "sd3/sd3.5_text_encoders_example": ("sd3.5", "sdxl-sd3"),
    "sd3/sd3.5_large_canny_controlnet_example": ("sd3.5", "sdxl-sd3"),
    "stable_cascade/stable_cascade__text_to_image": ("stable-cascade", "other-dit-2024"),
    "stable_cascade/stable_cascade_text_to_image": ("stable-cascade", "other-dit-2024"),
    "stable_cascade/stable_cascade__canny_controlnet": ("stable-cascade", "other-dit-2024"),
    "stable_cascade/stable_cascade__image_remixing": ("stable-cascade", "other-dit-2024"),
    "stable_cascade/stable_cascade__image_remixing_multiple": ("stable-cascade", "other-dit-2024"),
    "aura_flow/aura_flow_0.1_example": ("auraflow", "other-dit-2024"),
    "aura_flow/aura_flow_0.2_example": ("auraflow", "other-dit-2024"),
    "hunyuan_dit/hunyuan_dit_1.2_example": ("hunyuan-dit", "other-dit-2024"),
    "hidream/hidream_dev_example": ("hidream", "other-dit-2024"),
    "hidream/hidream_full_example": ("hidream", "other-dit-2024"),
    "lumina2/lumina2_basic_example": ("lumina-2", "other-dit-2024"),
    "omnigen/omnigen2_example": ("omnigen-2", "other-dit-2024"),
    "qwen_image/qwen_image_basic_example": ("qwen-image", "other-dit-2024"),
    "cosmos_predict2/cosmos_predict2_2b_t2i_example": ("cosmos-predict2", "other-dit-2024"),
    "z_image/z_image_turbo_example": ("z-image", "other-dit-2024"),
}

# Comfy-Org/example_workflows: the text-to-image examples of hosted models (their API nodes) and two open ones.
COMFY_ORG_EXAMPLES = {
    "api_nodes/openai-dall-e-3/text2image": ("dall-e-3", "closed-api-2024-25"),
    "api_nodes/GPT-Image-1/text2image": ("gpt-image-1", "closed-api-2024-25"),
    "api_nodes/ideogram/v3/ideogram_v3_t2i": ("ideogram-3", "closed-api-2024-25"),
    "api_nodes/luma/t2i/luma_t2i": ("luma-photon", "closed-api-2024-25"),
    "api_nodes/runway/image/text_to_image": ("runway-image", "closed-api-2024-25"),
    "api_nodes/stability_ai/stable_image_ultra_t2i": ("stable-image-ultra", "closed-api-2024-25"),
    "api_nodes/openai-dall-e-2/text2image": ("dalle-2", "dalle-2"),
    "image/qwen/qwen-image": ("qwen-image", "other-dit-2024"),
}

RULES: tuple[Rule, ...] = (
    Rule("dcsan/imagen", r"^output/renders/[^/]+/(?P<prefix>[a-z]+?)\d*-\d+\.(png|jpe?g|webp)$", "synthetic",
         "", "", "none stated", "unknown"),
    Rule("SupaGruen/StableDiffusion-CheatSheet", r"^img/[^/]+\.webp$", "synthetic", "stable-diffusion-1.5",
         "stable-diffusion-1", "MIT", "yes"),
    Rule("openai/dalle-2-preview", r"^assets/.+\.(png|jpe?g)$", "synthetic", "dalle-2", "dalle-2",
         "none stated (OpenAI examples)", "unknown"),
    Rule("BenjaminHavenaar/stylegan2-ada-pytorch", r"^out/seed\d+\.png$", "synthetic", "stylegan2-ada", "gan",
         "NVIDIA Source Code License (non-commercial)", "no"),
    Rule("ZhuoxuanZhangHarry/AgeGAN-FaceEvolution", r"^out/seed\d+\.png$", "synthetic", "stylegan2-ada-faces", "gan",
         "NVIDIA Source Code License (non-commercial)", "no"),
    Rule("Eissayou/ConditionalR3GAN", r"^out/seed\d+\.png$", "synthetic", "r3gan-ffhq", "gan",
         "none stated", "unknown"),
    Rule("ML72/AI-Image-Classifier-Playground", r"^public/images/ai/.+", "synthetic", "ml72-mixed", "mixed-unnamed",
         "MIT", "yes"),
    Rule("ML72/AI-Image-Classifier-Playground", r"^public/images/real/.+", "real", "ml72-real", "web-photo",
         "MIT", "yes"),
    Rule("EliSchwartz/imagenet-sample-images", r"^n\d+_.+\.JPEG$", "real", "imagenet", "web-photo",
         "ImageNet terms (research, non-commercial)", "no"),
    Rule("majedelhelou/denoising_datasets", r"^CBSD68/.+", "real", "bsd68", "scene-photo",
         "BSDS (research use)", "no"),
    Rule("majedelhelou/denoising_datasets", r"^CUrban100/.+", "real", "urban100", "urban-photo",
         "research benchmark (unknown)", "unknown"),
    Rule("majedelhelou/denoising_datasets", r"^CSun_Hays80/.+", "real", "sun-hays80", "scene-photo",
         "research benchmark (unknown)", "unknown"),
    Rule("majedelhelou/denoising_datasets", r"^CSet14/.+", "real", "set14", "classic-test-image",
         "research benchmark (unknown)", "unknown"),
    Rule("majedelhelou/denoising_datasets", r"^CSet5/.+", "real", "set5", "classic-test-image",
         "research benchmark (unknown)", "unknown"),
    Rule("cszn/FFDNet", r"^testsets/Kodak24/.+", "real", "kodak24", "film-scan",
         "Kodak (free for unrestricted use, as commonly stated)", "unknown"),
    Rule("cszn/FFDNet", r"^testsets/McMaster/.+", "real", "mcmaster", "scene-photo",
         "research benchmark (unknown)", "unknown"),
    Rule("cszn/FFDNet", r"^testsets/(RNI6|RNI15)/.+", "real", "rni-noisy", "noisy-photo",
         "research benchmark (unknown)", "unknown"),
    Rule("cszn/FFDNet", r"^testsets/CBSD68/.+", "real", "bsd68", "scene-photo", "BSDS (research use)", "no"),
    Rule("JingyunLiang/SwinIR", r"^testsets/RealSRSet\+5images/.+", "real", "realsrset", "web-photo",
         "research benchmark (unknown)", "unknown"),
    Rule("JingyunLiang/SwinIR", r"^testsets/McMaster/.+", "real", "mcmaster", "scene-photo",
         "research benchmark (unknown)", "unknown"),
    # Post-2022 generators.
    Rule("AI-Image-Gen/generator-testing", r"^img/(old/)?(?P<prefix>\d+-\d)-\d+\.jpg$", "synthetic", "", "",
         "GPL-3.0 (repository)", "unknown", prefixes=_generator_testing_prefixes(), history=True),
    Rule("comfyanonymous/ComfyUI_examples", r"^(?P<prefix>[a-z0-9_]+/[a-z0-9_.]+)\.png$", "synthetic", "", "",
         "0BSD-style (repository LICENSE; each model's own terms)", "unknown", prefixes=COMFY_EXAMPLES),
    Rule("Comfy-Org/example_workflows", r"^(?P<prefix>[A-Za-z0-9_./-]+)\.(png|jpg)$", "synthetic", "", "",
         "none stated (each provider's terms for its outputs)", "unknown", prefixes=COMFY_ORG_EXAMPLES),
    Rule("XLabs-AI/x-flux", r"^(results/result_\d+|assets/readme/examples/(result_\d+|furry\d|picture-[5-7]-rev1))\.png$",
         "synthetic", "flux-1-xlabs", "flux", "Apache-2.0 (code); FLUX.1-dev outputs", "unknown", history=True),
    Rule("PixArt-alpha/PixArt-alpha", r"^asset/images/controlnet/0_\d\.png$", "synthetic", "pixart-alpha",
         "other-dit-2024", "Apache-2.0 (repository)", "unknown"),
    # GPT-4o image generation (Sora / ChatGPT), one output per case; most were palette-reduced before
    # commit (dropped by the scan: see ``palette-reduced``).
    Rule("jamez-bondos/awesome-gpt4o-images", r"^cases/\d+/[^/]+\.(png|jpe?g|webp)$", "synthetic", "gpt-4o-image",
         "closed-api-2024-25", "CC BY 4.0 (per case)", "yes"),
    # Nano Banana (Gemini 2.5 Flash Image) and Nano Banana Pro outputs as posted (many resized by the
    # platform); inputs, case cards and the 144-dpi screenshots are left out.
    Rule("PicoTrex/Awesome-Nano-Banana-images", r"^images/case\d+/output\d*\.(png|jpe?g|webp)$", "synthetic",
         "nano-banana", "closed-api-2024-25", "Apache-2.0 / CC BY 4.0 (repository); images from social-media posts",
         "unknown", drop_list="PicoTrex+Awesome-Nano-Banana-images.screenshots.txt"),
    Rule("PicoTrex/Awesome-Nano-Banana-images", r"^images/pro_case\d+/output\d*\.(png|jpe?g|webp)$", "synthetic",
         "nano-banana-pro", "closed-api-2024-25",
         "Apache-2.0 / CC BY 4.0 (repository); images from social-media posts", "unknown",
         drop_list="PicoTrex+Awesome-Nano-Banana-images.screenshots.txt"),
    # HunyuanDiT's own sample outputs (IP-Adapter, ControlNet, LoRA); inputs and training images left out.
    Rule("Tencent/HunyuanDiT",
         r"^(ipadapter/asset/output|controlnet/asset/output|lora/asset/porcelain/inference)/[^/]+\.(png|jpe?g)$",
         "synthetic", "hunyuan-dit", "other-dit-2024",
         "Tencent Hunyuan Community License (not in the EU; outputs usable)", "unknown"),
    # Real photos of kinds the corpus lacked: low-light captures (DICM: camera JPEGs with EXIF; LIME).
    Rule("Li-Chongyi/Zero-DCE", r"^Zero-DCE_code/data/test_data/DICM/.+\.jpg$", "real", "dicm-lowlight",
         "low-light-photo", "research benchmark (unknown)", "unknown"),
    Rule("Li-Chongyi/Zero-DCE", r"^Zero-DCE_code/data/test_data/LIME/.+\.bmp$", "real", "lime-lowlight",
         "low-light-photo", "research benchmark (unknown)", "unknown"),
    # Phone and camera JPEGs straight from the device, EXIF intact (Pixel 5, iPhone 11, one WhatsApp copy).
    Rule("Tech4Tracing/CartridgeOCR", r"^(imagesForTesting/.+|src/scratch/textHighlight/sample)\.(jpg|JPG)$", "real",
         "cartridgeocr-phone", "phone-photo", "MIT", "yes"),
    # 25 camera and phone models of 12 makes, late 1990s to 2020 (the orientation set is one photo
    # rotated: two kept; a poster and a video-game render left out).
    Rule("ianare/exif-samples", r"^jpg/(exif-org/.+|gps/.+|hdr/.+|mobile/.+|tests/.+|orientation/(landscape|portrait)_1)\.jpg$",
         "real", "exif-samples", "camera-photo", "CC BY-SA 4.0 (contributed samples, per README)", "yes",
         exclude=r"45-gps_ifd"),
    # Camera and phone originals of ~100 models (2000-2019), EXIF intact: the curated list keeps long
    # sides >= 1200 px and drops files an editor (Photoshop, Lightroom, GIMP, ...) wrote.
    Rule("drewnoakes/metadata-extractor-images", r"^jpg/[^/]+\.(jpe?g|JPE?G)$", "real", "metadata-extractor-cameras",
         "camera-photo", "\"free to use however you wish\" (README)", "yes",
         keep_list="drewnoakes+metadata-extractor-images.keep.txt"),
    # High-ISO indoor captures of 5 cameras (the single-shot files, not the averaged ones).
    Rule("csjunxu/PolyU-Real-World-Noisy-Images-Dataset", r"^OriginalImages/[^/]+_Real\.JPG$", "real", "polyu-noisy",
         "noisy-photo", "PolyU dataset licence (non-commercial)", "no"),
)


@dataclass
class CorpusRow:
    repo: str
    commit: str
    path: str
    sha256: str
    label: str
    generator: str  # generator name (synthetic) or real source (real)
    family: str
    group: str  # split group: generator x repo for fakes, the source photo for reals
    licence: str
    commercial: str
    width: int
    height: int
    format: str

    def out_path(self, out: Path) -> Path:
        return out / self.label / self.generator / self.repo.replace("/", "+") / self.path


def read_index(path: str | Path = INDEX_PATH) -> list[CorpusRow]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        expected = [f.name for f in fields(CorpusRow)]
        if reader.fieldnames != expected:
            raise ValueError(f"columns are {reader.fieldnames}, expected {expected}")
        return [CorpusRow(**{**row, "width": int(row["width"]), "height": int(row["height"])}) for row in reader]


def write_index(rows: Iterable[CorpusRow], path: str | Path = INDEX_PATH) -> None:
    names = [f.name for f in fields(CorpusRow)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def mirror_path(mirror_dir: Path, repo: str) -> Path:
    return Path(mirror_dir) / repo.replace("/", "+") / "repo"


class Snapshot:
    """Blobs of one bare snapshot, read through one ``git cat-file --batch`` process."""

    def __init__(self, git_dir: Path):
        self.git_dir = git_dir
        self._process: subprocess.Popen | None = None

    def head(self) -> str:
        return subprocess.run(["git", "--git-dir", str(self.git_dir), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()

    def added_paths(self) -> list[tuple[str, str]]:
        """(commit, path) for every file some commit reachable from HEAD added or changed, newest first."""
        log = subprocess.run(["git", "--git-dir", str(self.git_dir), "log", "--no-renames", "--diff-filter=AM",
                              "--format=%x00%H", "--name-only", "-z", "HEAD"],
                             check=True, capture_output=True).stdout
        pairs, commit = [], ""
        for token in log.split(b"\0"):
            token = token.strip(b"\n")
            if not token:
                continue
            if len(token) == 40 and all(c in b"0123456789abcdef" for c in token):
                commit = token.decode()
            else:
                pairs.append((commit, token.decode("utf-8", "surrogateescape")))
        return pairs

    def paths(self, commit: str) -> list[str]:
        listing = subprocess.run(["git", "--git-dir", str(self.git_dir), "ls-tree", "-r", "-z", "--name-only", commit],
                                 check=True, capture_output=True).stdout
        return [p.decode("utf-8", "surrogateescape") for p in listing.split(b"\0") if p]

    def read(self, commit: str, path: str) -> bytes | None:
        if self._process is None:
            self._process = subprocess.Popen(["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._process.stdin.write(f"{commit}:{path}\n".encode("utf-8", "surrogateescape"))
        self._process.stdin.flush()
        header = self._process.stdout.readline().decode().split()
        if len(header) < 3 or header[1] != "blob":
            return None
        data = self._process.stdout.read(int(header[2]))
        self._process.stdout.read(1)
        return data

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait()
            self._process = None


def perceptual_hash(rgb: np.ndarray) -> int:
    """64-bit DCT hash of a 32x32 grey thumbnail (the usual pHash)."""
    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    n = np.arange(32)
    basis = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / 64)
    low = (basis @ grey @ basis.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def is_greyscale(rgb: np.ndarray) -> bool:
    """Grey (equal channels) or blank (a failed render): neither class may own such images."""
    if rgb.std() < 4:
        return True
    spread = rgb.astype(np.int16)
    return bool(np.abs(spread[..., 0] - spread[..., 1]).mean() < 1 and np.abs(spread[..., 1] - spread[..., 2]).mean() < 1)


def _describe(data: bytes) -> tuple[np.ndarray, str, bool]:
    """Pixels, format, and whether the file is palette-based (256 colours or fewer)."""
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        fmt = (image.format or "").lower()
        return np.asarray(image.convert("RGB")), fmt, image.mode in ("P", "PA")


@dataclass
class ScanResult:
    rows: list[CorpusRow]
    dropped: dict[str, int]  # reason -> count


def scan(mirror_dir: str | Path, rules: Iterable[Rule] = RULES, reserved_sha256: set[str] = frozenset(),
         on_file: Callable[[str], None] | None = None) -> ScanResult:
    """Rows for every file the rules select in the snapshots (first rule and first file win a duplicate)."""
    rows: list[CorpusRow] = []
    dropped: dict[str, int] = {}
    seen_sha: set[str] = set()
    seen_hash: list[int] = []
    snapshots: dict[str, tuple[Snapshot, str, list[str], list[tuple[str, str]] | None]] = {}

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    for rule in rules:
        if rule.repo not in snapshots:
            git_dir = mirror_path(Path(mirror_dir), rule.repo)
            if not git_dir.is_dir():
                drop(f"snapshot missing: {rule.repo}")
                continue
            snapshot = Snapshot(git_dir)
            commit = snapshot.head()
            snapshots[rule.repo] = (snapshot, commit, snapshot.paths(commit), None)
        snapshot, head, paths, history = snapshots[rule.repo]
        if rule.history and history is None:
            history = snapshot.added_paths()
            snapshots[rule.repo] = (snapshot, head, paths, history)
        # HEAD's files first, so a file still present is pinned at HEAD; then what history alone holds
        candidates = [(head, path) for path in paths] + (history if rule.history else [])
        pattern, exclude = re.compile(rule.pattern), re.compile(rule.exclude)
        prefixes = DCSAN_PREFIXES if rule.prefixes is None else rule.prefixes
        keep, deny = rule.listed(rule.keep_list), rule.listed(rule.drop_list) or frozenset()
        for commit, path in candidates:
            match = pattern.match(path)
            if not match or exclude.search(path) or not IMAGE_SUFFIX.search(path):
                continue
            if (keep is not None and path not in keep) or path in deny:
                drop("left out by the rule's list")
                continue
            generator, family = rule.source, rule.family
            if "prefix" in pattern.groupindex:
                if match["prefix"] not in prefixes:  # not one of the rule's generators (a screenshot, a photo...)
                    drop("not a listed generator")
                    continue
                generator, family = prefixes[match["prefix"]]
            data = snapshot.read(commit, path)
            if on_file:
                on_file(path)
            if data is None:
                drop("not a blob (LFS or missing)")
                continue
            sha = hashlib.sha256(data).hexdigest()
            if sha in reserved_sha256:
                drop("reserved")
                continue
            if sha in seen_sha:
                drop("exact copy")
                continue
            try:
                rgb, fmt, palette = _describe(data)
            except Exception:  # not decodable: an LFS pointer or a broken file
                drop("undecodable")
                continue
            if palette:  # colour-quantised after the fact (pngquant): a processing trace, not a camera's or a generator's
                drop("palette-reduced")
                continue
            if is_greyscale(rgb):
                drop("greyscale or blank")
                continue
            digest = perceptual_hash(rgb)
            if any(bin(digest ^ other).count("1") <= NEAR_COPY_BITS for other in seen_hash):
                drop("near copy")
                continue
            seen_sha.add(sha)
            seen_hash.append(digest)
            group = f"{generator}@{rule.repo}" if rule.label == "synthetic" else f"{rule.repo}:{path}"
            height, width = rgb.shape[:2]
            rows.append(CorpusRow(rule.repo, commit, path, sha, rule.label, generator, family, group, rule.licence,
                                  rule.commercial, width, height, fmt))
    for snapshot, *_ in snapshots.values():
        snapshot.close()
    return ScanResult(rows, dropped)


@dataclass
class RebuildReport:
    out: Path
    written: int
    already_present: int
    missing: list[dict]  # {repo, path, problem}

    def to_dict(self) -> dict:
        return {"out": str(self.out), "written": self.written, "already_present": self.already_present,
                "missing": self.missing}


def rebuild(mirror_dir: str | Path, out: str | Path, rows: Iterable[CorpusRow] | None = None,
            on_file: Callable[[], None] | None = None) -> RebuildReport:
    """Write every indexed image under ``out`` from the snapshots, checking each SHA-256."""
    from provenance.files import write_atomically

    out = Path(out)
    rows = read_index() if rows is None else list(rows)
    snapshots: dict[str, Snapshot | None] = {}
    written = present = 0
    missing: list[dict] = []
    for row in rows:
        target = row.out_path(out)
        if on_file:
            on_file()
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == row.sha256:
            present += 1
            continue
        if row.repo not in snapshots:
            git_dir = mirror_path(Path(mirror_dir), row.repo)
            snapshots[row.repo] = Snapshot(git_dir) if git_dir.is_dir() else None
        snapshot = snapshots[row.repo]
        if snapshot is None:
            missing.append({"repo": row.repo, "path": row.path, "problem": "no snapshot (fetch the repository)"})
            continue
        data = snapshot.read(row.commit, row.path)
        if data is None:
            missing.append({"repo": row.repo, "path": row.path, "problem": f"not in snapshot at {row.commit[:12]}"})
            continue
        if hashlib.sha256(data).hexdigest() != row.sha256:
            missing.append({"repo": row.repo, "path": row.path, "problem": "SHA-256 differs from the index"})
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        written += 1
    for snapshot in snapshots.values():
        if snapshot is not None:
            snapshot.close()
    return RebuildReport(out, written, present, missing)


def summary(rows: Iterable[CorpusRow]) -> list[dict]:
    """Counts per class x family x generator, with licences: the table for cards."""
    table: dict[tuple, dict] = {}
    for row in rows:
        key = (row.label, row.family, row.generator)
        entry = table.setdefault(key, {"label": row.label, "family": row.family, "generator": row.generator,
                                       "images": 0, "repos": set(), "licences": set(), "commercial": set()})
        entry["images"] += 1
        entry["repos"].add(row.repo)
        entry["licences"].add(row.licence)
        entry["commercial"].add(row.commercial)
    return [{**e, "repos": sorted(e["repos"]), "licences": sorted(e["licences"]),
             "commercial": sorted(e["commercial"])} for _, e in sorted(table.items())]
