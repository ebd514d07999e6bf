"""Where the SAM 3 weights come from, and loading them with transformers' ``from_pretrained``.

Resolution order: an explicit argument (``--checkpoint DIR``), else the ``SAM3_CHECKPOINT`` environment
variable, else the hub id ``facebook/sam3`` (gated: its license must be accepted on the hub). Nothing is
loaded or downloaded at import time.

transformers' own "Loading weights" tqdm bar never reaches stderr: ``loading_progress`` hands its counts to
the caller's display (the command line's one progress display), and without one the load is silent.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam3_agent.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from transformers import Sam3Model, Sam3Processor, Sam3TrackerModel, Sam3TrackerProcessor

DEFAULT_CHECKPOINT = "facebook/sam3"
CHECKPOINT_ENV = "SAM3_CHECKPOINT"
SAM3_MODEL_TYPES = ("sam3", "sam3_video")  # Sam3Model also loads the detector out of a sam3_video checkpoint
TRACKER_MODEL_TYPES = ("sam3_video", "sam3_tracker", "sam3_tracker_video")  # hold the tracker (point / box clicks)

HOW_TO_GET_WEIGHTS = (
    "To use the real SAM 3 weights: accept the license of facebook/sam3 on the Hugging Face hub "
    "(https://huggingface.co/facebook/sam3), log in with `hf auth login`, download them "
    "(e.g. `hf download facebook/sam3 --local-dir ./sam3`), then pass the directory with "
    f"`--checkpoint DIR` or `{CHECKPOINT_ENV}=DIR`. To try the commands without weights, make a tiny random "
    "checkpoint with `python tools/make_tiny_checkpoint.py DIR` (its masks are random)."
)


def resolve_checkpoint(checkpoint: str | Path | None = None) -> str:
    """The checkpoint to load: ``checkpoint`` if given, else $SAM3_CHECKPOINT if set, else ``facebook/sam3``."""
    if checkpoint is not None and str(checkpoint).strip():
        return str(checkpoint)
    from_env = os.environ.get(CHECKPOINT_ENV, "").strip()
    return from_env or DEFAULT_CHECKPOINT


def looks_like_path(spec: str) -> bool:
    """True unless ``spec`` has the shape of a hub id ("owner/name" or "name")."""
    return (
        os.path.isabs(spec)
        or spec.startswith((".", "~"))
        or spec.count("/") > 1
        or "\\" in spec
        or os.path.exists(os.path.expanduser(spec))
    )


ProgressListener = Callable[[str, int, int | None], None]
"""Told ``(description, done, total)`` as transformers loads weights (``total`` None when unknown)."""

_listener: ProgressListener | None = None


@contextmanager
def loading_progress(listener: ProgressListener | None) -> Iterator[None]:
    """While the block runs, the weight-loading progress of ``load_sam3`` / ``load_sam3_tracker`` goes to
    ``listener``; None: nothing is shown, the hub's download bars included (``--quiet``)."""
    global _listener
    previous, _listener = _listener, listener
    hub_bars_muted = listener is None and _mute_hub_bars()
    try:
        yield
    finally:
        _listener = previous
        if hub_bars_muted:
            from huggingface_hub.utils import enable_progress_bars

            enable_progress_bars()


def _mute_hub_bars() -> bool:
    """Turn the hub's download bars off; True when they were on (to turn them on again after)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    if are_progress_bars_disabled():
        return False
    disable_progress_bars()
    return True


class _ReportedBar:
    """What transformers' tqdm hook builds instead of a tqdm bar: the counts go to the listener, if any."""

    def __init__(self, iterable: Iterable[Any] | None = None, *args: Any, **kwargs: Any) -> None:
        self._iterable = iterable
        self._desc = str(kwargs.get("desc") or "Loading")
        total = kwargs.get("total")
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self._total = total
        self._done = 0
        self._tell()

    def _tell(self) -> None:
        if _listener is not None:
            _listener(self._desc, self._done, self._total)

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self._done += n
        self._tell()

    def __enter__(self) -> _ReportedBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:  # set_description, set_postfix, refresh, ...
        return lambda *args, **kwargs: None


@contextmanager
def report_weight_bars() -> Iterator[None]:
    """While the block runs, transformers' tqdm bars (its "Loading weights" bar) go to the ``loading_progress``
    listener instead of stderr; wrap any ``from_pretrained`` in it."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.set_tqdm_hook(lambda factory, args, kwargs: _ReportedBar(*args, **kwargs))
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)


def _fail(what: str) -> CheckpointError:
    return CheckpointError(f"{what}\n{HOW_TO_GET_WEIGHTS}")


def _model_type(directory: Path) -> object:
    """The ``model_type`` in ``directory``'s config.json (CheckpointError if there is none to read)."""
    if not directory.is_dir():
        raise _fail(f"SAM 3 checkpoint directory {str(directory)!r} does not exist or is not a directory.")
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise _fail(f"{str(directory)!r} has no config.json: expected a SAM 3 checkpoint directory.")
    try:
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise _fail(f"cannot read {str(config_file)!r}: {exc}") from exc


def _check_local_dir(directory: Path) -> None:
    """Raise CheckpointError unless ``directory`` holds a SAM 3 config.json."""
    model_type = _model_type(directory)
    if model_type not in SAM3_MODEL_TYPES:
        config_file = str(directory / "config.json")
        raise _fail(f"{config_file!r} is for model type {model_type!r}, expected one of {SAM3_MODEL_TYPES}.")


def load_sam3(
    checkpoint: str | Path | None = None, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> tuple[Sam3Model, Sam3Processor, str]:
    """Load ``Sam3Model`` (eval mode, on ``device``, in ``dtype``) and ``Sam3Processor``.

    Args:
        checkpoint: a local checkpoint directory or a hub id; None resolves as ``resolve_checkpoint``.
        device: torch device for the model.
        dtype: parameter dtype (None: float32).

    Returns:
        (model, processor, the resolved checkpoint string).

    Raises:
        CheckpointError: missing directory, directory without config.json, config of another model type,
            or the hub id could not be loaded (offline, unreachable, gated, unknown); the message says what
            was tried and how to get the weights.
    """
    spec = resolve_checkpoint(checkpoint)
    is_local = looks_like_path(spec)
    source = str(Path(spec).expanduser()) if is_local else spec
    if is_local:
        _check_local_dir(Path(source))
    import torch
    from transformers import AutoConfig, Sam3Model, Sam3Processor

    try:
        if not is_local:
            model_type = getattr(AutoConfig.from_pretrained(source), "model_type", None)
            if model_type not in SAM3_MODEL_TYPES:
                raise _fail(f"hub id {spec!r} is a {model_type!r} model, expected one of {SAM3_MODEL_TYPES}.")
        with report_weight_bars():
            model = Sam3Model.from_pretrained(source, dtype=dtype or torch.float32)
        processor = Sam3Processor.from_pretrained(source)
    except CheckpointError:
        raise
    except Exception as exc:  # transformers / huggingface_hub raise many types (OSError, HTTP, gated, offline)
        kind = "directory" if is_local else "hub id"
        raise _fail(f"could not load SAM 3 from {kind} {spec!r}: {type(exc).__name__}: {exc}") from exc
    return model.to(device).eval(), processor, spec


TRACKER_MISSING = (
    "clicks (points / boxes -> one object) need the SAM 3 tracker, which the full checkpoint holds: facebook/sam3 "
    "(model type 'sam3_video'), or a tiny random one from `python tools/make_tiny_checkpoint.py --tracker DIR`"
)


def has_tracker(checkpoint: str | Path | None = None) -> bool:
    """Whether ``checkpoint`` (resolved as ``resolve_checkpoint``) holds the SAM 3 tracker, without loading it.

    A local directory says so in its config.json (model type in ``TRACKER_MODEL_TYPES``; a detector-only
    ``sam3`` directory does not); a hub id is taken to (``facebook/sam3`` does) and is checked when loaded.
    """
    spec = resolve_checkpoint(checkpoint)
    if not looks_like_path(spec):
        return True
    try:
        return _model_type(Path(spec).expanduser()) in TRACKER_MODEL_TYPES
    except CheckpointError:
        return False


def load_sam3_tracker(
    checkpoint: str | Path | None = None, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> tuple[Sam3TrackerModel, Sam3TrackerProcessor, str]:
    """Load ``Sam3TrackerModel`` (eval mode, on ``device``, in ``dtype``) and ``Sam3TrackerProcessor``.

    The same conventions as ``load_sam3``: a local directory or a hub id, None resolving as
    ``resolve_checkpoint``. The full SAM 3 checkpoint (model type ``sam3_video``) serves both: transformers
    maps its detector backbone and ``tracker_neck`` into the tracker's vision encoder.

    Raises:
        CheckpointError: as ``load_sam3``, and for a checkpoint without the tracker (a detector-only ``sam3``
            directory); the message says where to get one that has it.
    """
    spec = resolve_checkpoint(checkpoint)
    is_local = looks_like_path(spec)
    source = str(Path(spec).expanduser()) if is_local else spec
    import torch
    from transformers import AutoConfig, Sam3TrackerModel, Sam3TrackerProcessor

    try:
        model_type = _model_type(Path(source)) if is_local else AutoConfig.from_pretrained(source).model_type
        if model_type not in TRACKER_MODEL_TYPES:
            raise CheckpointError(f"SAM 3 checkpoint {spec!r} is of model type {model_type!r}: {TRACKER_MISSING}.")
        with _expected_type_notice_muted(), report_weight_bars():
            model = Sam3TrackerModel.from_pretrained(source, dtype=dtype or torch.float32)
        processor = Sam3TrackerProcessor.from_pretrained(source)
    except CheckpointError:
        raise
    except Exception as exc:  # transformers / huggingface_hub raise many types (OSError, HTTP, gated, offline)
        kind = "directory" if is_local else "hub id"
        raise _fail(f"could not load the SAM 3 tracker from {kind} {spec!r}: {type(exc).__name__}: {exc}") from exc
    return model.to(device).eval(), processor, spec


class _TrackerFromFullCheckpoint(logging.Filter):
    """Drops transformers' warning that a ``sam3_video`` config builds a ``sam3_tracker`` model: that is how the
    full checkpoint is meant to load (transformers' own SAM 3 tracker documentation does it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "to instantiate a model of type `sam3_tracker`" not in record.getMessage()


@contextmanager
def _expected_type_notice_muted() -> Iterator[None]:
    config_logger = logging.getLogger("transformers.configuration_utils")
    muted = _TrackerFromFullCheckpoint()
    config_logger.addFilter(muted)
    try:
        yield
    finally:
        config_logger.removeFilter(muted)
