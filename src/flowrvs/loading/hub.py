"""Models by hub name: the public FlowRVS release, converted once, and flowrvs model repositories.

``xmz111/FlowRVS`` holds the public release as ``.pth`` files (a DiT checkpoint and the tuned
VAE) beside no diffusers folder; its base is ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``. Resolving it
downloads (or finds in the Hugging Face cache) the DiT (``FlowRVS_dit_mevis.pth``, else the
older ``mevis_dit.pth``), ``tuned_vae.pth`` and the base's configs, VAE, text encoder and
tokenizer (not its DiT weights, which the release replaces), converts them once
(:func:`flowrvs.loading.convert.convert_release`) into a model folder under
:func:`flowrvs.runtime.cache.cache_root` keyed by the files' revisions, and loads that folder
afterwards.
``anuragba/refereverything`` holds REM's checkpoints; its base is
``Wan-AI/Wan2.1-T2V-14B-Diffusers``. Resolving it lists the repository's files (the cached
snapshot's, offline) and takes its one Wan checkpoint (a ``.pth`` whose name mentions Wan;
``dit_file`` names another), downloads the base's configs, VAE, text encoder and tokenizer
(its DiT weights only if the checkpoint lacks some DiT tensor) and converts once
(:func:`flowrvs.loading.convert.convert_rem`) into a cached ``REMPipeline`` folder.
A repository that holds a flowrvs model folder (``model_index.json`` of a ``FlowRVSPipeline``
or ``REMPipeline``) is downloaded and used as it is.

Everything goes through ``huggingface_hub``: ``HF_HUB_OFFLINE=1`` (or no network) with the
files in the cache works without a network call; without them the error names the repository,
the files and the manual route (``flowrvs convert``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.loading.convert import convert_release, convert_rem
from flowrvs.loading.model_folder import INDEX_FILE, MODEL_PARTS, PIPELINE_CLASS_NAMES
from flowrvs.models.defaults import TEXT_LEN
from flowrvs.runtime.cache import cache_root

logger = logging.getLogger(__name__)

RELEASE_REPO = "xmz111/FlowRVS"
DIT_FILES = ("FlowRVS_dit_mevis.pth", "mevis_dit.pth")
VAE_FILE = "tuned_vae.pth"
BASE_REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
BASE_PATTERNS = ["model_index.json", "transformer/config.json", "vae/*", "text_encoder/*", "tokenizer/*"]
REM_REPO = "anuragba/refereverything"
REM_BASE_REPO = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
CONVERSION_VERSION = "1"  # bump when the conversion's output changes for the same inputs
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# what huggingface_hub raises when it cannot give a file: an HTTP error (no such repository,
# revision or file, gated, server), a file neither the hub nor the cache has, offline mode
HUB_ERRORS = (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled)


def looks_like_repo_id(name: str) -> bool:
    """``owner/name`` with hub-legal characters (a path that does not exist may look like one)."""
    return bool(_REPO_ID.fullmatch(name)) and ".." not in name


def _manual_route(repo: str, base: str, dit_names: tuple[str, ...]) -> str:
    dits = " or ".join(dit_names)
    return (
        f"needs {dits} and {VAE_FILE} from {repo} and the diffusers folder {base}; download them "
        f"(huggingface-cli download) and run `flowrvs convert --wan BASE_DIR --dit {dit_names[0]} "
        f"--vae {VAE_FILE} --out MODEL`, then pass --model MODEL"
    )


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub can be asked at all: not ``HF_HUB_OFFLINE``, and its host answers within
    ``timeout`` seconds. Without it every request is answered from the cache alone, so a machine
    with no network gets its answer at once instead of after huggingface_hub's retries."""
    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def _download(repo: str, filename: str) -> Path:
    return Path(hf_hub_download(repo, filename, local_files_only=not hub_reachable()))


def _unreachable(err: Exception) -> bool:
    """True for 'not in the cache and the hub cannot be asked' (offline, or no network)."""
    return isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled))


def _missing(err: Exception) -> bool:
    """True for 'the hub says there is no such file or repository'."""
    return not _unreachable(err) and isinstance(err, (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError))


def _flowrvs_folder_repo(repo: str) -> Path | None:
    """The snapshot of ``repo`` when it holds a flowrvs model folder, else None (the release
    route then says what is missing)."""
    try:
        index = json.loads(_download(repo, INDEX_FILE).read_text())
    except HUB_ERRORS:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):  # a model_index.json of something else
        return None
    if not isinstance(index, dict) or index.get("_class_name") not in PIPELINE_CLASS_NAMES:
        return None
    try:
        return Path(snapshot_download(repo, local_files_only=not hub_reachable()))
    except HUB_ERRORS as err:
        raise FlowRVSError(f"cannot download the model folder {repo}: {first_line(err)}") from err


def _release_files(repo: str, dit_names: tuple[str, ...], base: str) -> tuple[Path, Path, Path]:
    """Local paths of the DiT checkpoint, the tuned VAE and the base folder (downloaded or cached)."""

    def fail(err: Exception) -> FlowRVSError:
        if _unreachable(err):
            return FlowRVSError(
                f"{repo} is not in the Hugging Face cache and the hub cannot be reached (offline): "
                + _manual_route(repo, base, dit_names)
            )
        return FlowRVSError(f"cannot fetch the FlowRVS release {repo}: {first_line(err)}; " + _manual_route(repo, base, dit_names))

    dit, last_error = None, None
    for name in dit_names:
        try:
            dit = _download(repo, name)
            break
        except HUB_ERRORS as err:
            if not (_missing(err) or _unreachable(err)):
                raise fail(err) from err
            last_error = err
    if dit is None:
        if last_error is not None and _unreachable(last_error):
            raise fail(last_error) from last_error
        raise FlowRVSError(f"{repo} has none of {', '.join(dit_names)}; name the DiT file with --dit-file")
    try:
        vae = _download(repo, VAE_FILE)
        base_dir = Path(snapshot_download(base, allow_patterns=BASE_PATTERNS, local_files_only=not hub_reachable()))
    except HUB_ERRORS as err:
        raise fail(err) from err
    missing = [p for p in MODEL_PARTS if not (base_dir / p).is_dir()]
    if missing:
        raise FlowRVSError(
            f"the base {base} in the Hugging Face cache lacks {', '.join(missing)}/ (offline with a partial "
            "download?): " + _manual_route(repo, base, dit_names)
        )
    return dit, vae, base_dir


def _revision_key(dit: Path, vae: Path, base_dir: Path, settings: dict) -> str:
    """Changes when any input file changes: the hub cache names blobs by content hash and
    snapshots by commit."""
    parts = [dit.name, dit.resolve().name, vae.resolve().name, base_dir.name, json.dumps(settings, sort_keys=True),
             CONVERSION_VERSION]
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]


def resolve_hub_model(
    repo: str,
    dit_file: str | None = None,
    base: str | None = None,
    text_len: int = TEXT_LEN,
    mask_latent_normalized: bool = False,
) -> Path:
    """A local model folder for hub id ``repo`` (see the module docstring).

    ``dit_file``: the DiT checkpoint's name in ``repo`` (default: ``FlowRVS_dit_mevis.pth``,
    then ``mevis_dit.pth``). ``base``: the Wan diffusers repository (default
    ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``). ``text_len`` / ``mask_latent_normalized``: the
    release's settings (the 2026 release: 256 tokens, raw mask latents).
    """
    if dit_file is None and base is None:
        folder = _flowrvs_folder_repo(repo)
        if folder is not None:
            return folder
    if repo == REM_REPO:
        return _resolve_rem(repo, dit_file, base or REM_BASE_REPO)
    base = base or BASE_REPO
    dit_names = (dit_file,) if dit_file else DIT_FILES
    dit, vae, base_dir = _release_files(repo, dit_names, base)
    settings = {"text_len": text_len, "mask_latent_normalized": mask_latent_normalized, "base": base}
    out = cache_root() / "models" / f"{repo.replace('/', '--')}--{_revision_key(dit, vae, base_dir, settings)}"
    if (out / INDEX_FILE).is_file():
        return out
    logger.warning("flowrvs: converting %s (%s, %s, base %s) once into %s", repo, dit.name, VAE_FILE, base, out)
    return convert_release(base_dir, dit, vae, out, mask_latent_normalized=mask_latent_normalized, text_len=text_len)


# ---- REM ---------------------------------------------------------------------------------
def _repo_files(repo: str) -> list[str]:
    """The files of ``repo``: listed by the hub, or (offline) those of its cached snapshot."""
    from huggingface_hub import HfApi

    if hub_reachable():
        return list(HfApi().list_repo_files(repo))
    snapshot = Path(snapshot_download(repo, local_files_only=True))
    return sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())


def _rem_checkpoint_name(repo: str, dit_file: str | None, base: str) -> str:
    """The REM checkpoint to convert: ``dit_file``, else the repository's one Wan ``.pth``."""
    if dit_file:
        return dit_file
    try:
        files = _repo_files(repo)
    except HUB_ERRORS as err:
        hint = (f"download a checkpoint of {repo} and the diffusers folder {base}, then run `flowrvs convert "
                "--method rem --wan BASE_DIR --dit CHECKPOINT.pth --out MODEL` and pass --model MODEL")
        if _unreachable(err):
            raise FlowRVSError(f"{repo} is not in the Hugging Face cache and the hub cannot be reached (offline): {hint}") from err
        raise FlowRVSError(f"cannot list the files of {repo}: {first_line(err)}; {hint}") from err
    wan = [f for f in files if f.endswith(".pth") and "wan" in Path(f).name.lower()]
    if len(wan) != 1:
        found = ", ".join(wan) if wan else "none"
        raise FlowRVSError(f"{repo} holds {len(wan)} Wan checkpoint(s) ({found}); name one with --dit-file")
    return wan[0]


def _resolve_rem(repo: str, dit_file: str | None, base: str) -> Path:
    """A cached ``REMPipeline`` folder converted once from ``repo``'s checkpoint over ``base``."""
    from flowrvs.io.names import check_relative_path

    name = check_relative_path(_rem_checkpoint_name(repo, dit_file, base), f"a file of {repo}")
    try:
        checkpoint = _download(repo, name)
        base_dir = Path(snapshot_download(base, allow_patterns=BASE_PATTERNS, local_files_only=not hub_reachable()))
    except HUB_ERRORS as err:
        where = "is not in the Hugging Face cache and the hub cannot be reached (offline)" if _unreachable(err) else \
            f"cannot be fetched ({first_line(err)})"
        raise FlowRVSError(f"{repo}'s {name} over {base} {where}; or run `flowrvs convert --method rem` on local copies") from err
    key = hashlib.sha1("\0".join([name, checkpoint.resolve().name, base_dir.name, "rem", CONVERSION_VERSION]).encode())
    out = cache_root() / "models" / f"{repo.replace('/', '--')}--{key.hexdigest()[:16]}"
    if (out / INDEX_FILE).is_file():
        return out

    def base_weights(part_dir: Path) -> Path:
        try:
            folder = snapshot_download(base, allow_patterns=[f"{part_dir.name}/*"], local_files_only=not hub_reachable())
        except HUB_ERRORS as err:
            raise FlowRVSError(f"the checkpoint lacks some {part_dir.name} tensors and {base}'s weights cannot be "
                               f"fetched: {first_line(err)}") from err
        return Path(folder) / part_dir.name

    logger.warning("flowrvs: converting %s (%s, base %s) once into %s", repo, name, base, out)
    return convert_rem(base_dir, checkpoint, out, base_weights=base_weights)
